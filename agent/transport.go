package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pilothouse/pilothouse/agent/internal/routing"
	"github.com/pilothouse/pilothouse/agent/wire"
)

// Transport wraps base (nil means a clone of http.DefaultTransport) so that
// every outbound call gets a client span, carries traceparent and the
// request's X-Request-ID, and is bounded by WithOutboundTimeout. The span
// ends when the response body is closed or read to the end. It works with
// contexts that hold no span or request: the call then starts a new trace.
//
// The policy applies in this order: routing (a host that names a service
// the control plane knows, as in http://orders/..., goes to one of its live
// instances, chosen by the routing rule for that target or in turn), the
// target's circuit breaker (open: a fallback response, no call), the
// target's timeout, then the call. A call to an instance's address counts
// as a call to its service for breakers and timeouts.
func (a *Agent) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &transport{a: a, base: base}
}

type transport struct {
	a    *Agent
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	a := t.a
	method := normalizeMethod(req.Method)
	target, instances := a.endpoints.resolve(req.URL.Host)
	var rules *outboundRules
	if cp := a.pol.current.Load(); cp != nil {
		rules = cp.targets[target]
	}

	timeout := a.cfg.outboundTimeout
	if rules != nil && rules.timeout > 0 && (timeout == 0 || rules.timeout < timeout) {
		timeout = rules.timeout
	}
	cancel := context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	requestID := RequestID(ctx)
	// Named by method alone, as OpenTelemetry's HTTP conventions ask:
	// a name with the peer's address would give trace backends one
	// operation per host and port. The peer is in server.address/port.
	ctx, span := a.tracer.Start(ctx, method,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("server.address", req.URL.Hostname()),
			attribute.String("url.full", redactedURL(req)),
		))
	if port := urlPort(req.URL); port > 0 {
		span.SetAttributes(attribute.Int("server.port", port))
	}
	if requestID != "" {
		span.SetAttributes(attribute.String(wire.AttrRequestID, requestID))
	}

	out := req.Clone(ctx) // never change the caller's request
	if instances != nil {
		if !t.route(out, span, target, instances, rules) {
			err := fmt.Errorf("%w: %s", ErrNoInstance, target)
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			span.End()
			cancel()
			return nil, err
		}
	}

	var (
		br    *breakerRule
		gen   uint64
		start time.Time
	)
	if rules != nil && rules.breaker != nil {
		br = rules.breaker
		start = a.cfg.now()
		var ok bool
		gen, ok = br.b.Allow(start)
		switch {
		case ok:
			br.counts.add(actPassed)
		case br.shadow:
			br.counts.add(actShadow)
			markSpan(span, br.id, actShadow, actBroken)
			br = nil
		default:
			br.counts.add(actBroken)
			markSpan(span, br.id, actBroken, 0)
			resp := br.fallback.response(out)
			span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
			span.End()
			cancel()
			return resp, nil
		}
	}

	a.cfg.propagators.inject(ctx, out.Header)
	if requestID != "" && out.Header.Get(wire.HeaderRequestID) == "" {
		out.Header.Set(wire.HeaderRequestID, requestID)
	}

	resp, err := t.base.RoundTrip(out)
	if br != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		now := a.cfg.now()
		slow := br.slowCall > 0 && now.Sub(start) > br.slowCall
		br.b.Record(gen, now, err != nil || br.failed(status), slow)
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.End()
		cancel()
		return resp, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	// A 101 body must stay an io.ReadWriteCloser (protocol upgrades), so
	// it is not wrapped; the span ends at the switch.
	if resp.Body == nil || resp.Body == http.NoBody || resp.StatusCode == http.StatusSwitchingProtocols {
		span.End()
		cancel()
		return resp, nil
	}
	resp.Body = &spanBody{rc: resp.Body, span: span, cancel: cancel}
	return resp, nil
}

// ErrNoInstance is returned by the Transport when a call names a known
// service that has no live instance.
var ErrNoInstance = errors.New("agent: no live instance")

// route rewrites out to one live instance of target: a subset by the
// routing rule (header override, then weight), then round robin within
// it; without a rule (or when the subset has no live instance) round robin
// over all instances. It reports false when there is no instance at all.
func (t *transport) route(out *http.Request, span trace.Span, target string, instances []routing.Instance, rules *outboundRules) bool {
	var (
		in     routing.Instance
		ok     bool
		ruleID string
		subset string
	)
	if rules != nil && rules.route != nil {
		rr := rules.route
		i := rr.table.PickSubset(out.Header, rand.Float64())
		in, ok = rr.table.PickInstance(i, instances)
		if ok {
			ruleID, subset = rr.id, rr.table.Subset(i)
			rr.counts.add(actRouted)
		}
	}
	if !ok {
		in, ok = t.a.endpoints.roundRobin(target).Pick(instances)
	}
	if !ok {
		return false
	}
	out.URL.Host = in.Address
	out.Host = ""
	if span.IsRecording() {
		attrs := []attribute.KeyValue{
			attribute.String(wire.AttrAction, wire.ActionRouted),
			attribute.String("pilothouse.route.target", target),
			attribute.String("pilothouse.route.instance", in.Address),
		}
		if ruleID != "" {
			attrs = append(attrs, attribute.String(wire.AttrRuleID, ruleID), attribute.String("pilothouse.route.subset", subset))
		}
		span.SetAttributes(attrs...)
		span.AddEvent(policyEvent, trace.WithAttributes(attrs...))
	}
	return true
}

// markSpan records a rule decision on a client span.
func markSpan(span trace.Span, id string, act, would action) {
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attribute.String(wire.AttrRuleID, id), attribute.String(wire.AttrAction, act.String())}
	if act == actShadow {
		attrs = append(attrs, attribute.String(AttrShadowAction, would.String()))
	}
	span.SetAttributes(attrs...)
	span.AddEvent(policyEvent, trace.WithAttributes(attrs...))
}

// response builds a synthetic answer to req from a canned one.
func (c *cannedResponse) response(req *http.Request) *http.Response {
	return &http.Response{
		Status:        strconv.Itoa(c.status) + " " + http.StatusText(c.status),
		StatusCode:    c.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {c.contentType}},
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Request:       req,
	}
}

// redactedURL drops user info and the query, which may hold secrets.
func redactedURL(req *http.Request) string {
	u := *req.URL
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	return u.String()
}

// spanBody ends the client span and releases the timeout when the body is
// read to the end or closed.
type spanBody struct {
	rc     io.ReadCloser
	span   trace.Span
	cancel context.CancelFunc
	once   sync.Once
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.end(nil)
	} else if err != nil {
		b.end(err)
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.rc.Close()
	b.end(nil)
	return err
}

func (b *spanBody) end(err error) {
	b.once.Do(func() {
		if err != nil {
			b.span.RecordError(err)
			b.span.SetStatus(codes.Error, err.Error())
		}
		b.span.End()
		b.cancel()
	})
}

// urlPort is u's port, or the scheme's default; 0 when neither is known.
func urlPort(u *url.URL) int {
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return 0
		}
		return n
	}
	switch u.Scheme {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}
