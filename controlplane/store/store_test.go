package store

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSpanRoundTrip(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	want := shopTrace(1, t0, "req-1", 200)
	want[4].StatusMessage = "charged"
	want[4].Events = []SpanEvent{{Name: "retry", Time: t0.Add(5 * time.Millisecond), Attributes: map[string]any{"attempt": 2.0}}}
	mustWriteSpans(t, s, want)

	got, err := s.Trace(context.Background(), traceID(1))
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Trace:\ngot  %+v\nwant %+v", got, want)
	}

	// Upper-case lookups find the same trace.
	if _, err := s.Trace(context.Background(), strings.ToUpper(traceID(1))); err != nil {
		t.Errorf("Trace(upper case): got %v, want nil", err)
	}
	if _, err := s.Trace(context.Background(), traceID(2)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Trace(unknown): got %v, want ErrNotFound", err)
	}
	if _, err := s.Trace(context.Background(), "nothex"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Trace(bad id): got %v, want ErrInvalid", err)
	}
}

func TestTraceSummary(t *testing.T) {
	full := shopTrace(7, t0, "req-7", 503)
	want := TraceSummary{
		TraceID: traceID(7), RootService: "gateway", RootName: "GET /api/orders/:id", Route: "/api/orders/:id",
		HTTPStatus: 503, RequestID: "req-7", Start: t0, Duration: 40 * time.Millisecond,
		SpanCount: 7, ErrorCount: 5, Services: []string{"gateway", "inventory", "orders", "payments"},
	}
	tests := []struct {
		name    string
		batches [][]Span
	}{
		{"one batch", [][]Span{full}},
		{"root last", [][]Span{full[1:], full[:1]}},
		{"one span per batch, reversed", [][]Span{{full[6]}, {full[5]}, {full[4]}, {full[3]}, {full[2]}, {full[1]}, {full[0]}}},
		{"services separately, root in the middle", [][]Span{{full[4]}, {full[2], full[3], full[5]}, {full[0]}, {full[6], full[1]}}},
		{"resent batches are ignored", [][]Span{full[3:], full, full[:2]}},
	}
	// The writer finds stored traces in its trace cache (with or without
	// their span IDs) or in the database; each way must give the same
	// summary. Reopening the store empties the cache.
	modes := []struct {
		name     string
		reopenAt func(batch int) bool
	}{
		{"cached", func(int) bool { return false }},
		{"reopen before every batch", func(int) bool { return true }},
		{"reopen after the first batch", func(i int) bool { return i == 1 }},
	}
	for _, tt := range tests {
		for _, mode := range modes {
			t.Run(tt.name+"/"+mode.name, func(t *testing.T) {
				dir := t.TempDir()
				s := openTestStore(t, dir, Options{})
				for i, b := range tt.batches {
					if i > 0 && mode.reopenAt(i) {
						if err := s.Close(); err != nil {
							t.Fatalf("Close: %v", err)
						}
						s = openTestStore(t, dir, Options{})
					}
					mustWriteSpans(t, s, b)
				}
				checkTraceSummary(t, s, want)
			})
		}
	}
}

func checkTraceSummary(t *testing.T, s *Store, want TraceSummary) {
	t.Helper()
	got, err := s.Traces(context.Background(), TraceFilter{})
	if err != nil {
		t.Fatalf("Traces: %v", err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("Traces:\ngot  %+v\nwant [%+v]", got, want)
	}
	if st := s.Stats(); st.Spans != int64(want.SpanCount) || st.Traces != 1 {
		t.Errorf("Stats: got %d spans, %d traces, want %d, 1", st.Spans, st.Traces, want.SpanCount)
	}
}

func TestTraceSummaryBeforeRoot(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	full := shopTrace(1, t0, "", 200)
	mustWriteSpans(t, s, full[4:5]) // payments only
	got, err := s.Traces(context.Background(), TraceFilter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("Traces: got %v, %v, want one trace", got, err)
	}
	if got[0].RootService != "payments" || got[0].Route != "/charge" {
		t.Errorf("provisional root: got %s %s, want payments /charge", got[0].RootService, got[0].Route)
	}
	mustWriteSpans(t, s, full[:1])
	got, _ = s.Traces(context.Background(), TraceFilter{})
	if got[0].RootService != "gateway" || got[0].Route != "/api/orders/:id" || got[0].RequestID != "" {
		t.Errorf("root: got %s %s %q, want gateway /api/orders/:id and no request ID", got[0].RootService, got[0].Route, got[0].RequestID)
	}
}

func TestTracesFilters(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	// Trace n starts at t0+n seconds. 0: 200, 1: 503, 2: 404, 3: 200 but a
	// client span errored, 4: only gateway (no downstream), slow.
	mustWriteSpans(t, s, shopTrace(0, t0, "req-0", 200))
	mustWriteSpans(t, s, shopTrace(1, t0.Add(time.Second), "req-1", 503))
	mustWriteSpans(t, s, shopTrace(2, t0.Add(2*time.Second), "req-2", 404))
	tr3 := shopTrace(3, t0.Add(3*time.Second), "req-3", 200)
	tr3[3].StatusCode = "error"
	mustWriteSpans(t, s, tr3)
	tr4 := shopTrace(4, t0.Add(4*time.Second), "req-4", 200)[:1]
	tr4[0].Duration = 2 * time.Second
	tr4[0].Route, tr4[0].Name = "/api/slow", "GET /api/slow"
	mustWriteSpans(t, s, tr4)

	tests := []struct {
		name string
		f    TraceFilter
		want []int
	}{
		{"all, newest first", TraceFilter{}, []int{4, 3, 2, 1, 0}},
		{"limit", TraceFilter{Limit: 2}, []int{4, 3}},
		{"service of any span", TraceFilter{Service: "payments"}, []int{3, 2, 1, 0}},
		{"service of root", TraceFilter{Service: "gateway"}, []int{4, 3, 2, 1, 0}},
		{"unknown service", TraceFilter{Service: "pay"}, nil},
		{"route", TraceFilter{Route: "/api/slow"}, []int{4}},
		{"status error", TraceFilter{Status: "error"}, []int{3, 1}},
		{"status ok", TraceFilter{Status: "ok"}, []int{4, 2, 0}},
		{"status exact", TraceFilter{Status: "404"}, []int{2}},
		{"status class", TraceFilter{Status: "5xx"}, []int{1}},
		{"status class 2xx", TraceFilter{Status: "2xx"}, []int{4, 3, 0}},
		{"min duration", TraceFilter{MinDuration: time.Second}, []int{4}},
		{"request id", TraceFilter{RequestID: "req-2"}, []int{2}},
		{"since inclusive", TraceFilter{Since: t0.Add(3 * time.Second)}, []int{4, 3}},
		{"until exclusive", TraceFilter{Until: t0.Add(2 * time.Second)}, []int{1, 0}},
		{"combined", TraceFilter{Service: "orders", Status: "ok", Since: t0.Add(time.Second)}, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Traces(context.Background(), tt.f)
			if err != nil {
				t.Fatalf("Traces: %v", err)
			}
			var ids []int
			for _, tr := range got {
				for n := range 5 {
					if tr.TraceID == traceID(n) {
						ids = append(ids, n)
					}
				}
			}
			if !reflect.DeepEqual(ids, tt.want) {
				t.Errorf("got traces %v, want %v", ids, tt.want)
			}
		})
	}

	if _, err := s.Traces(context.Background(), TraceFilter{Status: "broken"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad status: got %v, want ErrInvalid", err)
	}
}

func TestEdges(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	mustWriteSpans(t, s, shopTrace(0, t0, "a", 200))
	mustWriteSpans(t, s, shopTrace(1, t0.Add(time.Second), "b", 503))
	// A client call to a service without an agent.
	ext := Span{TraceID: traceID(9), SpanID: spanID(9, 0), Service: "payments", Name: "POST", Kind: "client",
		Start: t0.Add(2 * time.Second), Duration: time.Millisecond, HTTPStatus: 502,
		Attributes: map[string]any{"server.address": "psp.example"}}
	mustWriteSpans(t, s, []Span{ext})

	tests := []struct {
		name         string
		since, until time.Time
		want         []Edge
	}{
		{"all", time.Time{}, time.Time{}, []Edge{
			{Caller: "gateway", Callee: "orders", Requests: 2, Errors: 1, First: t0.Add(time.Millisecond)},
			{Caller: "orders", Callee: "inventory", Requests: 2, Errors: 1, First: t0.Add(14 * time.Millisecond)},
			{Caller: "orders", Callee: "payments", Requests: 2, Errors: 0, First: t0.Add(3 * time.Millisecond)},
			{Caller: "payments", Callee: "psp.example", Requests: 1, Errors: 1, First: t0.Add(2 * time.Second)},
		}},
		{"window", t0.Add(500 * time.Millisecond), t0.Add(1500 * time.Millisecond), []Edge{
			{Caller: "gateway", Callee: "orders", Requests: 1, Errors: 1, First: t0.Add(1001 * time.Millisecond)},
			{Caller: "orders", Callee: "inventory", Requests: 1, Errors: 1, First: t0.Add(1014 * time.Millisecond)},
			{Caller: "orders", Callee: "payments", Requests: 1, Errors: 0, First: t0.Add(1003 * time.Millisecond)},
		}},
		{"empty window", t0.Add(time.Hour), time.Time{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Edges(context.Background(), tt.since, tt.until)
			if err != nil {
				t.Fatalf("Edges: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Edges:\ngot  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestEdgesWaitForTheCalleesSpan: a call made a moment ago whose callee's
// span is not stored yet is left out, not drawn to a host address; once
// the callee's span arrives it counts, and a call that never gets one
// counts under its address after childGrace.
func TestEdgesWaitForTheCalleesSpan(t *testing.T) {
	now := t0.Add(time.Hour)
	s := openTestStore(t, t.TempDir(), Options{Now: func() time.Time { return now }})
	trace := shopTrace(0, now.Add(-time.Second), "a", 200)
	var callerSide, calleeSide []Span
	for _, sp := range trace {
		if sp.Service == "gateway" {
			callerSide = append(callerSide, sp)
		} else {
			calleeSide = append(calleeSide, sp)
		}
	}
	for i := range callerSide {
		if callerSide[i].Kind == "client" {
			callerSide[i].Attributes = map[string]any{"server.address": "127.0.0.1"}
		}
	}
	mustWriteSpans(t, s, callerSide)
	edges := func() []Edge {
		t.Helper()
		got, err := s.Edges(context.Background(), time.Time{}, time.Time{})
		if err != nil {
			t.Fatalf("Edges: %v", err)
		}
		return got
	}
	if got := edges(); len(got) != 0 {
		t.Errorf("before the callee's spans arrive: got %+v, want no edge", got)
	}
	mustWriteSpans(t, s, calleeSide)
	if got := edges(); len(got) == 0 || got[0] != (Edge{Caller: "gateway", Callee: "orders", Requests: 1, First: now.Add(-time.Second + time.Millisecond)}) {
		t.Errorf("after: got %+v, want gateway -> orders first", got)
	}
	now = now.Add(childGrace)
	ext := Span{TraceID: traceID(9), SpanID: spanID(9, 0), Service: "payments", Name: "POST", Kind: "client",
		Start: now.Add(-time.Second), Duration: time.Millisecond, Attributes: map[string]any{"server.address": "psp.example"}}
	mustWriteSpans(t, s, []Span{ext})
	for _, e := range edges() {
		if e.Callee == "psp.example" {
			t.Errorf("a call a second old without a callee span: got edge %+v, want none yet", e)
		}
	}
	now = now.Add(childGrace)
	found := false
	for _, e := range edges() {
		found = found || e == (Edge{Caller: "payments", Callee: "psp.example", Requests: 1, First: ext.Start})
	}
	if !found {
		t.Errorf("after %s: got %+v, want payments -> psp.example", childGrace, edges())
	}
}

func TestInvalidInput(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	good := shopTrace(0, t0, "r", 200)[0]
	spanCases := []struct {
		name  string
		edit  func(*Span)
		field string
	}{
		{"empty trace id", func(sp *Span) { sp.TraceID = "" }, "trace_id"},
		{"short trace id", func(sp *Span) { sp.TraceID = "abc" }, "trace_id"},
		{"zero trace id", func(sp *Span) { sp.TraceID = strings.Repeat("0", 32) }, "trace_id"},
		{"non-hex trace id", func(sp *Span) { sp.TraceID = strings.Repeat("g", 32) }, "trace_id"},
		{"empty span id", func(sp *Span) { sp.SpanID = "" }, "span_id"},
		{"bad parent", func(sp *Span) { sp.ParentSpanID = "xyz" }, "parent_span_id"},
		{"no start", func(sp *Span) { sp.Start = time.Time{} }, "start"},
		{"negative duration", func(sp *Span) { sp.Duration = -1 }, "duration"},
		{"unknown kind", func(sp *Span) { sp.Kind = "sideways" }, "kind"},
		{"unknown status", func(sp *Span) { sp.StatusCode = "meh" }, "status"},
		{"attribute not JSON", func(sp *Span) { sp.Attributes = map[string]any{"f": func() {}} }, "attributes"},
	}
	for _, tt := range spanCases {
		t.Run("span/"+tt.name, func(t *testing.T) {
			sp := good
			tt.edit(&sp)
			err := s.WriteSpans(context.Background(), []Span{good, sp})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "span 1: "+tt.field) {
				t.Errorf("WriteSpans: got %v, want ErrInvalid naming span 1: %s", err, tt.field)
			}
			if err := sp.Validate(); !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate: got %v, want ErrInvalid", err)
			}
		})
	}
	goodLog := LogRecord{Time: t0, Service: "gateway", Body: "hi"}
	logCases := []struct {
		name  string
		edit  func(*LogRecord)
		field string
	}{
		{"no time", func(l *LogRecord) { l.Time = time.Time{} }, "time"},
		{"bad trace id", func(l *LogRecord) { l.TraceID = "12" }, "trace_id"},
		{"bad span id", func(l *LogRecord) { l.SpanID = "zz" }, "span_id"},
		{"severity out of range", func(l *LogRecord) { l.SeverityNumber = 99 }, "severity_number"},
	}
	for _, tt := range logCases {
		t.Run("log/"+tt.name, func(t *testing.T) {
			l := goodLog
			tt.edit(&l)
			err := s.WriteLogs(context.Background(), []LogRecord{l})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "log 0: "+tt.field) {
				t.Errorf("WriteLogs: got %v, want ErrInvalid naming log 0: %s", err, tt.field)
			}
		})
	}
	if st := s.Stats(); st.Spans != 0 || st.Logs != 0 {
		t.Errorf("Stats after invalid writes: got %d spans, %d logs, want 0, 0", st.Spans, st.Logs)
	}
}

func TestRestartDurability(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{RetentionInterval: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	mustWriteSpans(t, s, shopTrace(0, t0, "req-0", 200))
	mustWriteLogs(t, s, []LogRecord{{Time: t0, Service: "gateway", Body: "hello", RequestID: "req-0"}})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.WriteLogs(context.Background(), []LogRecord{{Time: t0, Body: "late"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: got %v, want ErrClosed", err)
	}
	if err := s.RunRetention(t0); !errors.Is(err, ErrClosed) {
		t.Errorf("RunRetention after Close: got %v, want ErrClosed", err)
	}

	s = openTestStore(t, dir, Options{})
	spans, err := s.Trace(context.Background(), traceID(0))
	if err != nil || len(spans) != 7 {
		t.Fatalf("Trace after reopen: got %d spans, %v, want 7", len(spans), err)
	}
	logs, err := s.Logs(context.Background(), LogFilter{RequestID: "req-0"})
	if err != nil || len(logs) != 1 || logs[0].Body != "hello" {
		t.Fatalf("Logs after reopen: got %+v, %v, want the hello line", logs, err)
	}
	if st := s.Stats(); st.Spans != 7 || st.Logs != 1 || st.Traces != 1 || st.SizeBytes == 0 {
		t.Errorf("Stats after reopen: got %+v, want 7 spans, 1 log, 1 trace, a size", st)
	}
	// New traces get fresh keys after a restart.
	mustWriteSpans(t, s, shopTrace(1, t0, "req-1", 200))
	if spans, err := s.Trace(context.Background(), traceID(1)); err != nil || len(spans) != 7 {
		t.Errorf("Trace of new trace: got %d spans, %v, want 7", len(spans), err)
	}
	if spans, _ := s.Trace(context.Background(), traceID(0)); len(spans) != 7 {
		t.Errorf("Trace of old trace: got %d spans, want 7", len(spans))
	}
}

func TestErrBusy(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, Options{QueueSize: 1})
	// Hold SQLite's write lock from another connection so the writer stalls.
	blocker, err := sql.Open("sqlite", dir+"/"+FileName)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	conn, err := blocker.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}

	// With the writer stuck, one batch (of the requests it collected before
	// it got stuck) is being written and one request is queued: writes sent
	// one after another are soon refused at once. Keep sending until one is
	// (three writes were not always enough: the writer may collect all of
	// them into its batch).
	results := make(chan error, 1000)
	sent := 0
	for busy := false; !busy; {
		if sent == cap(results) {
			t.Fatalf("no ErrBusy after %d writes", sent)
		}
		go func(i int) { results <- s.WriteSpans(context.Background(), shopTrace(i, t0, "", 200)) }(sent)
		sent++
		select {
		case err := <-results:
			sent--
			if !errors.Is(err, ErrBusy) {
				t.Fatalf("write while stalled: got %v, want ErrBusy first", err)
			}
			busy = true
		case <-time.After(time.Millisecond): // give the write time to be refused
		}
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	for range sent {
		if err := <-results; err != nil && !errors.Is(err, ErrBusy) {
			t.Errorf("write after unblock: got %v, want nil or ErrBusy", err)
		}
	}
	if got := s.Stats().Rejected; got < 1 {
		t.Errorf("Stats.Rejected: got %d, want >= 1", got)
	}
	// Once drained the store accepts writes again.
	mustWriteSpans(t, s, shopTrace(5, t0, "", 200))
}

func TestCanceledContext(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WriteSpans(ctx, shopTrace(0, t0, "", 200)); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteSpans: got %v, want context.Canceled", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	const writers, batches = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches*2)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				n := w*batches + b
				tr := shopTrace(n, t0.Add(time.Duration(n)*time.Millisecond), "", 200)
				// Half of each trace now, half later, like two services.
				if err := s.WriteSpans(context.Background(), tr[:3]); err != nil {
					errs <- err
				}
				logs := []LogRecord{{Time: tr[0].Start, Service: "gateway", Body: "a", TraceID: tr[0].TraceID},
					{Time: tr[0].Start, Service: "orders", Body: "b", TraceID: tr[0].TraceID}}
				if err := s.WriteLogs(context.Background(), logs); err != nil {
					errs <- err
				}
				if logs[0].Seq == 0 || logs[1].Seq <= logs[0].Seq {
					errs <- errors.New("seqs not assigned in order")
				}
				if err := s.WriteSpans(context.Background(), tr[3:]); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write: %v", err)
	}
	st := s.Stats()
	if st.Spans != writers*batches*7 || st.Traces != writers*batches || st.Logs != writers*batches*2 {
		t.Errorf("Stats: got %+v, want %d spans, %d traces, %d logs", st, writers*batches*7, writers*batches, writers*batches*2)
	}
	got, err := s.Traces(context.Background(), TraceFilter{Limit: MaxLimit})
	if err != nil || len(got) != writers*batches {
		t.Fatalf("Traces: got %d, %v, want %d", len(got), err, writers*batches)
	}
	for _, tr := range got {
		if tr.SpanCount != 7 || tr.RootService != "gateway" || len(tr.Services) != 4 {
			t.Fatalf("summary %s: got %+v, want 7 spans rooted at gateway over 4 services", tr.TraceID, tr)
		}
	}
}
