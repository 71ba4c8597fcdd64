package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/api"
	"github.com/pilothouse/pilothouse/controlplane/dashboard"
	"github.com/pilothouse/pilothouse/controlplane/loki"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/controlplane/tracebackend"
)

// engineReader answers the JSON API's and the dashboard's reads from the
// engines when they are configured, so any replica sees what every
// replica received:
//   - logs of a request ID (or trace ID) come from Loki, searched around
//     the start of the request's trace; the store answers if Loki fails;
//   - other log searches are Loki's lines and the store's, merged (see
//     searchLogs); paging and the live tail (Seq cursors) read the store;
//   - a trace is the union of the local store's spans and the trace
//     backend's, by span ID, so neither forwarding lag nor a replica that
//     saw only part of the trace leaves a hole;
//   - trace search is the store's summaries and the trace backend's, by
//     trace ID (see tracebackend.Reader.Search for what each backend can
//     be asked: Jaeger only with a service).
//
// The service map reads the embedded store.
type engineReader struct {
	dashboard.Store
	store  *store.Store
	loki   *loki.Client
	traces *tracebackend.Reader
	s      *Server
	// searchWait bounds every read's wait for the trace backend and Loki
	// (searches and a request's logs); 0 means defaultSearchWait.
	searchWait time.Duration
}

// defaultSearchWait is how long trace and log search wait for the trace
// backend or Loki before they answer from the store alone: the traces
// list, the logs page and the service page must not hang on a slow
// backend.
const defaultSearchWait = 2 * time.Second

// newEngineReader returns st itself when no engine is configured for
// reading.
func (s *Server) newEngineReader(st *store.Store) (dashboard.Store, error) {
	r := &engineReader{Store: st, store: st, s: s}
	if s.cfg.LokiURL != "" {
		c, err := loki.NewClient(loki.ClientConfig{URL: s.cfg.LokiURL, Now: s.cfg.Now})
		if err != nil {
			return nil, fmt.Errorf("server: loki: %w", err)
		}
		r.loki = c
	}
	if s.cfg.TraceBackendURL != "" {
		tr, err := tracebackend.NewReader(tracebackend.ReaderConfig{Kind: s.cfg.TraceBackend, URL: s.cfg.TraceBackendURL})
		if err != nil {
			return nil, fmt.Errorf("server: trace backend: %w", err)
		}
		r.traces = tr
	}
	if r.loki == nil && r.traces == nil {
		return st, nil
	}
	return r, nil
}

var (
	_ api.Reader      = (*engineReader)(nil)
	_ dashboard.Store = (*engineReader)(nil)
)

// Logs implements api.Reader and dashboard.Store.
func (r *engineReader) Logs(ctx context.Context, f store.LogFilter) ([]store.LogRecord, error) {
	if r.loki == nil || f.BeforeSeq != 0 || f.AfterSeq != 0 {
		return r.store.Logs(ctx, f)
	}
	if f.RequestID == "" && f.TraceID == "" {
		return r.searchLogs(ctx, f)
	}
	lf := f
	if lf.Since.IsZero() && lf.Until.IsZero() {
		if start, ok := r.traceStart(ctx, f); ok {
			lf.Since = start.Add(-loki.DefaultWindowBefore)
			lf.Until = start.Add(loki.DefaultWindowAfter)
		}
	}
	sctx, cancel := r.searchContext(ctx)
	defer cancel()
	recs, err := r.loki.Logs(sctx, lf)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err() // the reader went away; Loki did not fail
	}
	if err != nil {
		r.s.cfg.Logger.Warn("server: loki query failed; answering from the store", "err", err)
		return r.store.Logs(ctx, f)
	}
	return recs, nil
}

// searchContext bounds a search's wait for an engine by searchWait.
func (r *engineReader) searchContext(ctx context.Context) (context.Context, context.CancelFunc) {
	wait := r.searchWait
	if wait <= 0 {
		wait = defaultSearchWait
	}
	return context.WithTimeout(ctx, wait)
}

// searchLogs answers a log search without Seq cursors from Loki and the
// store. Loki holds what every replica forwarded, this one's included,
// so its answer is the complete one, except that it lags by the
// forwarder's batch wait (about 1 s) and, without Since, is searched
// over the client's Lookback (1 h) only. The store's answer covers this
// replica's part of both gaps, so the two are merged: one record per
// time, service, instance, body and request ID (records share no ID),
// newest first, at most f's limit (the store's default and maximum).
//
// A page holding a line only Loki had carries no Seq (0 on every line):
// a Seq cursor would page or tail through this replica's store alone,
// skipping the other replicas' lines, so the dashboard offers neither an
// older page nor a live tail there, only a reload. When Loki adds
// nothing, the store's page is the answer, Seqs and all, and its cursors
// page on through the store as before.
//
// Loki is given searchWait; when it fails, is too slow or cannot express
// f (loki.ErrUnsupportedFilter: a FATAL level), the store answers alone,
// with a warning unless the filter was the reason or the reader left.
func (r *engineReader) searchLogs(ctx context.Context, f store.LogFilter) ([]store.LogRecord, error) {
	local, err := r.store.Logs(ctx, f) // first: it rejects an invalid filter
	if err != nil {
		return nil, err
	}
	sctx, cancel := r.searchContext(ctx)
	defer cancel()
	lf := f
	lf.Limit = logLimit(f.Limit)
	remote, err := r.loki.Logs(sctx, lf)
	switch {
	case errors.Is(err, loki.ErrUnsupportedFilter):
		return local, nil
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err() // the reader went away; Loki did not fail
	case err != nil:
		r.s.cfg.Logger.Warn("server: loki log search failed; answering from the store", "err", err)
		return local, nil
	}
	return mergeLogs(local, remote, lf.Limit), nil
}

// logKey identifies a log record across the store and Loki, which share
// no ID; Loki labels a record without a service "unknown".
type logKey struct {
	timeNs                             int64
	service, instance, body, requestID string
}

func keyOf(l *store.LogRecord) logKey {
	svc := l.Service
	if svc == "" {
		svc = "unknown"
	}
	return logKey{l.Time.UnixNano(), svc, l.Instance, l.Body, l.RequestID}
}

// mergeLogs adds to local (the store's page) the remote records it
// lacks, newest first, at most limit. The store's copy of a record wins
// (it has the attributes). If remote adds nothing to the page, local is
// returned as it is; else every Seq is 0 (see searchLogs).
func mergeLogs(local, remote []store.LogRecord, limit int) []store.LogRecord {
	seen := make(map[logKey]bool, len(local)+len(remote))
	merged := make([]store.LogRecord, 0, len(local)+len(remote))
	for _, l := range local {
		seen[keyOf(&l)] = true
		merged = append(merged, l)
	}
	for _, l := range remote {
		if k := keyOf(&l); !seen[k] {
			seen[k] = true
			l.Seq = -1 // marks Loki's lines until the page is cut
			merged = append(merged, l)
		}
	}
	// Newest first; at equal times the store's order (Seq descending)
	// holds and Loki's lines follow.
	slices.SortStableFunc(merged, func(a, b store.LogRecord) int { return b.Time.Compare(a.Time) })
	merged = merged[:min(len(merged), limit)]
	if !slices.ContainsFunc(merged, func(l store.LogRecord) bool { return l.Seq == -1 }) {
		return local[:min(len(local), limit)]
	}
	for i := range merged {
		merged[i].Seq = 0
	}
	return merged
}

// logLimit is the store's reading of a LogFilter limit.
func logLimit(n int) int {
	switch {
	case n <= 0:
		return store.DefaultLogLimit
	case n > store.MaxLimit:
		return store.MaxLimit
	}
	return n
}

// traceStart is the start of the request's (or trace's) trace as the
// store knows it.
func (r *engineReader) traceStart(ctx context.Context, f store.LogFilter) (t0 time.Time, ok bool) {
	if f.TraceID != "" {
		spans, err := r.store.Trace(ctx, f.TraceID)
		if err == nil && len(spans) > 0 {
			return spans[0].Start, true
		}
	}
	if f.RequestID != "" {
		sums, err := r.store.Traces(ctx, store.TraceFilter{RequestID: f.RequestID, Limit: 1})
		if err == nil && len(sums) > 0 {
			return sums[0].Start, true
		}
	}
	return time.Time{}, false
}

// Trace implements api.Reader and dashboard.Store.
func (r *engineReader) Trace(ctx context.Context, traceID string) ([]store.Span, error) {
	local, lerr := r.store.Trace(ctx, traceID)
	if r.traces == nil {
		return local, lerr
	}
	tctx, cancel := r.searchContext(ctx)
	defer cancel()
	remote, rerr := r.traces.Trace(tctx, traceID)
	if rerr != nil && !errors.Is(rerr, store.ErrNotFound) && ctx.Err() == nil {
		r.s.cfg.Logger.Warn("server: trace backend read failed; answering from the store", "trace_id", traceID, "err", rerr)
	}
	if len(remote) == 0 {
		return local, lerr
	}
	if len(local) == 0 {
		return remote, nil
	}
	seen := make(map[string]bool, len(local))
	for _, sp := range local {
		seen[sp.SpanID] = true
	}
	merged := local
	for _, sp := range remote {
		if !seen[sp.SpanID] {
			merged = append(merged, sp)
		}
	}
	sortSpans(merged)
	return merged, nil
}

// Traces implements api.Reader and dashboard.Store: the store's summaries
// and the trace backend's, by trace ID (the store's summary wins when both
// have a trace), newest first, at most f's limit. When the backend fails
// the store answers alone.
func (r *engineReader) Traces(ctx context.Context, f store.TraceFilter) ([]store.TraceSummary, error) {
	local, err := r.store.Traces(ctx, f)
	if err != nil || r.traces == nil {
		return local, err
	}
	sctx, cancel := r.searchContext(ctx)
	defer cancel()
	remote, err := r.traces.Search(sctx, f)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err() // the reader went away; the backend did not fail
	}
	if err != nil {
		r.s.cfg.Logger.Warn("server: trace backend search failed; answering from the store", "err", err)
		return local, nil
	}
	return mergeSummaries(local, remote, f.Limit), nil
}

// mergeSummaries adds to local the remote summaries of traces it lacks,
// newest first, at most limit (the store's default and maximum apply).
func mergeSummaries(local, remote []store.TraceSummary, limit int) []store.TraceSummary {
	if len(remote) == 0 {
		return local
	}
	seen := make(map[string]bool, len(local))
	for _, s := range local {
		seen[s.TraceID] = true
	}
	merged := local
	for _, s := range remote {
		if !seen[s.TraceID] {
			seen[s.TraceID] = true
			merged = append(merged, s)
		}
	}
	tracebackend.SortSummaries(merged)
	return merged[:min(len(merged), store.TraceLimit(limit))]
}

// sortSpans orders spans by start, then span ID, as the store does.
func sortSpans(spans []store.Span) {
	slices.SortStableFunc(spans, func(a, b store.Span) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		switch {
		case a.SpanID < b.SpanID:
			return -1
		case a.SpanID > b.SpanID:
			return 1
		}
		return 0
	})
}
