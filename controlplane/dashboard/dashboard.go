// Package dashboard adapts the control plane's store and registry to the
// ui.Source interface, and with WithPolicies the policy store to
// ui.PolicySource: it maps stored spans, logs, heartbeat figures and
// policy versions into the dashboard's view-model types.
//
// Wire it in the server:
//
//	src := dashboard.New(st, reg, dashboard.WithPolicies(pol))
//	mux.Handle("/", ui.New(src, ui.WithPolicies(src), ui.WithAgentURL(publicURL)))
package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/policy"
	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/ui"
)

// Store is the part of *store.Store the dashboard reads.
type Store interface {
	Traces(ctx context.Context, f store.TraceFilter) ([]store.TraceSummary, error)
	Trace(ctx context.Context, traceID string) ([]store.Span, error)
	Logs(ctx context.Context, f store.LogFilter) ([]store.LogRecord, error)
	Edges(ctx context.Context, since, until time.Time) ([]store.Edge, error)
}

// Registry is the part of *registry.Registry the dashboard reads.
type Registry interface {
	Services(now time.Time) []registry.Service
	Service(name string, now time.Time) (registry.Service, bool)
}

var (
	_ Store     = (*store.Store)(nil)
	_ Registry  = (*registry.Registry)(nil)
	_ ui.Source = (*Source)(nil)
)

// Figures of the service page.
const (
	// RecentErrors is how many failed traces the service page lists.
	RecentErrors = 10
	// Slowest is how many slow traces the service page lists.
	Slowest = 10
	// SlowestWindow is how far back the slowest traces are looked for.
	SlowestWindow = 15 * time.Minute
	// slowestScan caps the traces of the window ranked for slowness.
	slowestScan = 500
)

// Source implements ui.Source over a store and a registry. It is safe for
// concurrent use when they are.
type Source struct {
	store    Store
	reg      Registry
	policies PolicyStore
	onChange func(ctx context.Context, c policy.Change)
}

// New returns a Source reading from st and reg. Nil options are ignored.
func New(st Store, reg Registry, opts ...Option) *Source {
	s := &Source{store: st, reg: reg}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	return s
}

// mapErr turns store errors into the ones the dashboard understands.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("dashboard: %w: %w", ui.ErrNotFound, err)
	case errors.Is(err, store.ErrInvalid):
		return fmt.Errorf("dashboard: %w: %w", ui.ErrBadParam, err)
	default:
		return fmt.Errorf("dashboard: %w", err)
	}
}

// Services implements ui.Source.
func (s *Source) Services(ctx context.Context, now time.Time) ([]ui.ServiceSummary, error) {
	svcs := s.reg.Services(now)
	out := make([]ui.ServiceSummary, len(svcs))
	for i, svc := range svcs {
		out[i] = summary(svc)
	}
	return out, nil
}

func summary(svc registry.Service) ui.ServiceSummary {
	series := make([]ui.Point, len(svc.Series))
	for i, p := range svc.Series {
		series[i] = ui.Point{Time: p.Time, Requests: p.Requests, Errors: p.Errors, P95: p.P95, Span: p.Span}
	}
	return ui.ServiceSummary{
		Name:           svc.Name,
		Health:         ui.Health(svc.Health),
		InstanceCount:  len(svc.Instances),
		RequestsPerSec: svc.RequestsPerSec,
		ErrorRate:      svc.ErrorRate,
		P95:            svc.P95,
		Series:         series,
		Drops:          drops(svc.Telemetry),
	}
}

func drops(t wire.TelemetryStats) ui.Drops {
	return ui.Drops{Spans: t.SpansDropped, Logs: t.LogsDropped, LocalLogs: t.LocalLogsDropped, ExportErrors: t.ExportErrors}
}

// Service implements ui.Source. A service the registry does not know but
// the store has traces of (its agent stopped beating) still has a page.
func (s *Source) Service(ctx context.Context, name string, now time.Time) (ui.ServiceDetail, error) {
	var d ui.ServiceDetail
	svc, known := s.reg.Service(name, now)
	if known {
		d.Summary = summary(svc)
		d.Routes = make([]ui.RouteStats, len(svc.Routes))
		for i, r := range svc.Routes {
			d.Routes[i] = ui.RouteStats{Method: r.Method, Route: r.Route, Requests: r.Requests, Errors: r.Errors,
				RequestsPerSec: r.RequestsPerSec, ErrorRate: r.ErrorRate, P50: r.P50, P95: r.P95, P99: r.P99, Max: r.Max}
		}
		d.Instances = make([]ui.Instance, len(svc.Instances))
		for i, in := range svc.Instances {
			d.Instances[i] = instance(in)
		}
	} else {
		d.Summary = ui.ServiceSummary{Name: name, Health: ui.Down}
	}
	errs, err := s.store.Traces(ctx, store.TraceFilter{Service: name, Status: "error", Limit: RecentErrors})
	if err != nil {
		return d, mapErr(err)
	}
	recent, err := s.store.Traces(ctx, store.TraceFilter{Service: name, Since: now.Add(-SlowestWindow), Limit: slowestScan})
	if err != nil {
		return d, mapErr(err)
	}
	if !known && len(errs) == 0 && len(recent) == 0 {
		return d, fmt.Errorf("dashboard: service %q: %w", name, ui.ErrNotFound)
	}
	d.RecentErrors = traceRows(errs)
	slices.SortStableFunc(recent, func(a, b store.TraceSummary) int { return cmp.Compare(b.Duration, a.Duration) })
	d.Slowest = traceRows(recent[:min(len(recent), Slowest)])
	return d, nil
}

func instance(in registry.Instance) ui.Instance {
	checks := make([]ui.Check, len(in.Checks))
	for i, c := range in.Checks {
		checks[i] = ui.Check{Name: c.Name, OK: c.OK, Message: c.Message, Duration: c.Duration.D()}
	}
	return ui.Instance{ID: in.ID, Address: in.Address, Version: in.Version, StartedAt: in.StartedAt, LastSeen: in.LastSeen,
		Health: ui.Health(in.Health), Checks: checks, PolicyVersion: in.PolicyVersion, PolicyError: in.PolicyError, Drops: drops(in.Telemetry)}
}

// Traces implements ui.Source.
func (s *Source) Traces(ctx context.Context, q ui.TraceQuery) ([]ui.TraceRow, error) {
	ts, err := s.store.Traces(ctx, store.TraceFilter{Service: q.Service, Route: q.Route, Status: q.Status, MinDuration: q.MinDuration,
		RequestID: q.RequestID, Attributes: attributeMatches(q.Attributes), Since: q.Since, Until: q.Until, Limit: q.Limit})
	if err != nil {
		return nil, mapErr(err)
	}
	return traceRows(ts), nil
}

func traceRows(ts []store.TraceSummary) []ui.TraceRow {
	out := make([]ui.TraceRow, len(ts))
	for i, t := range ts {
		out[i] = ui.TraceRow{TraceID: t.TraceID, RootService: t.RootService, RootName: t.RootName, Route: t.Route, HTTPStatus: t.HTTPStatus,
			RequestID: t.RequestID, Start: t.Start, Duration: t.Duration, SpanCount: t.SpanCount, ErrorCount: t.ErrorCount, Services: t.Services}
	}
	return out
}

// Trace implements ui.Source.
func (s *Source) Trace(ctx context.Context, traceID string) (ui.Trace, error) {
	spans, err := s.store.Trace(ctx, traceID)
	if err != nil {
		return ui.Trace{}, mapErr(err)
	}
	out := ui.Trace{TraceID: traceID, Spans: make([]ui.Span, len(spans))}
	for i, sp := range spans {
		events := make([]ui.SpanEvent, len(sp.Events))
		for j, e := range sp.Events {
			events[j] = ui.SpanEvent{Name: e.Name, Time: e.Time, Attributes: attrs(e.Attributes)}
		}
		out.Spans[i] = ui.Span{SpanID: sp.SpanID, ParentSpanID: sp.ParentSpanID, Service: sp.Service, Instance: sp.Instance, Name: sp.Name,
			Kind: sp.Kind, Start: sp.Start, Duration: sp.Duration, Status: sp.StatusCode, StatusMessage: sp.StatusMessage, RequestID: sp.RequestID,
			Route: sp.Route, HTTPStatus: sp.HTTPStatus, Attributes: attrs(sp.Attributes), Events: events}
	}
	return out, nil
}

// Logs implements ui.Source.
func (s *Source) Logs(ctx context.Context, q ui.LogQuery) ([]ui.LogLine, error) {
	recs, err := s.store.Logs(ctx, store.LogFilter{RequestID: q.RequestID, TraceID: q.TraceID, Service: q.Service, Level: q.Level, Query: q.Text,
		Attributes: attributeMatches(q.Attributes), Since: q.Since, Until: q.Until, BeforeSeq: q.BeforeSeq, AfterSeq: q.AfterSeq, Limit: q.Limit})
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]ui.LogLine, len(recs))
	for i, l := range recs {
		out[i] = ui.LogLine{Seq: l.Seq, Time: l.Time, Service: l.Service, Instance: l.Instance, Level: l.Level, Body: l.Body,
			TraceID: l.TraceID, SpanID: l.SpanID, RequestID: l.RequestID, Attributes: attrs(l.Attributes)}
	}
	return out, nil
}

// Edges implements ui.Source.
func (s *Source) Edges(ctx context.Context, since, until time.Time) ([]ui.Edge, error) {
	es, err := s.store.Edges(ctx, since, until)
	if err != nil {
		return nil, mapErr(err)
	}
	return foldEdges(es, MaxMapServices), nil
}

// attrs renders attribute values as text, sorted by key.
func attrs(m map[string]any) []ui.Attr {
	if len(m) == 0 {
		return nil
	}
	out := make([]ui.Attr, 0, len(m))
	for k, v := range m {
		out = append(out, ui.Attr{Key: k, Value: attrText(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func attrText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	default:
		return fmt.Sprint(v)
	}
}

// attributeMatches turns the UI's attribute filters into the store's.
func attributeMatches(as []ui.Attr) []store.AttributeMatch {
	out := make([]store.AttributeMatch, len(as))
	for i, a := range as {
		out[i] = store.AttributeMatch{Key: a.Key, Value: a.Value}
	}
	return out
}
