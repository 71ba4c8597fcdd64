package dashboard

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

var shopServices = []string{"gateway", "orders", "payments", "inventory"}

func traceID(i int) string { return fmt.Sprintf("7e57%028x", i+1) }

func requestID(i int) string { return fmt.Sprintf("req-%08d", i) }

// shopRequest is request i of the shop: gateway -> orders -> (inventory,
// payments) as seven server and client spans, and logsPer log lines;
// every 20th request fails in payments.
func shopRequest(i int, start time.Time, logsPer int) ([]store.Span, []store.LogRecord) {
	tid, rid := traceID(i), requestID(i)
	failed := i%20 == 0
	sid := func(n int) string { return fmt.Sprintf("%08x%08x", i+1, n+1) }
	status, code := "ok", 200
	if failed {
		status, code = "error", 502
	}
	mk := func(n, parent int, svc, kind, name, route string, off, dur time.Duration) store.Span {
		s := store.Span{TraceID: tid, SpanID: sid(n), Service: svc, Instance: svc + "-0", Name: name, Kind: kind, Start: start.Add(off), Duration: dur,
			StatusCode: "ok", RequestID: rid, Route: route, HTTPStatus: 200,
			Attributes: map[string]any{"http.request.method": "GET", "url.path": "/api/orders/" + fmt.Sprint(i), "network.peer.address": "10.0.3.17"}}
		if parent >= 0 {
			s.ParentSpanID = sid(parent)
		}
		return s
	}
	dur := time.Duration(20+i%80) * time.Millisecond
	ms := time.Millisecond
	spans := []store.Span{
		mk(0, -1, "gateway", "server", "GET /api/orders/:id", "/api/orders/:id", 0, dur+10*ms),
		mk(1, 0, "gateway", "client", "GET orders", "", ms, dur+8*ms),
		mk(2, 1, "orders", "server", "GET /orders/:id", "/orders/:id", 2*ms, dur+6*ms),
		mk(3, 2, "orders", "client", "GET inventory", "", 3*ms, dur/4+2*ms),
		mk(4, 3, "inventory", "server", "GET /stock/:sku", "/stock/:sku", 4*ms, dur/4),
		mk(5, 2, "orders", "client", "POST payments", "", 5*ms+dur/4, dur/2+2*ms),
		mk(6, 5, "payments", "server", "POST /charge", "/charge", 6*ms+dur/4, dur/2),
	}
	if failed {
		for _, n := range []int{0, 1, 2, 5, 6} {
			spans[n].StatusCode, spans[n].HTTPStatus = status, code
		}
		spans[6].StatusMessage = "bank declined"
	}
	logs := make([]store.LogRecord, logsPer)
	for j := range logs {
		svc := shopServices[j%4]
		level, body := "INFO", fmt.Sprintf("handled %s step %d of request %d", svc, j, i)
		if failed && svc == "payments" {
			level, body = "ERROR", "charge failed: bank declined"
		}
		logs[j] = store.LogRecord{Time: start.Add(time.Duration(j) * time.Millisecond), Service: svc, Instance: svc + "-0", Level: level, Body: body,
			TraceID: tid, SpanID: sid([]int{0, 2, 6, 4}[j%4]), RequestID: rid, Attributes: map[string]any{"order_id": float64(i)}}
	}
	return spans, logs
}

// fillStore writes n shop requests ending at end, logsPer lines each, in
// large batches.
func fillStore(tb testing.TB, st *store.Store, n, logsPer int, end time.Time, spread time.Duration) {
	tb.Helper()
	ctx := context.Background()
	const batch = 2000
	var spans []store.Span
	var logs []store.LogRecord
	flush := func() {
		if err := st.WriteSpans(ctx, spans); err != nil {
			tb.Fatalf("write spans: %v", err)
		}
		if err := st.WriteLogs(ctx, logs); err != nil {
			tb.Fatalf("write logs: %v", err)
		}
		spans, logs = spans[:0], logs[:0]
	}
	step := spread / time.Duration(n)
	for i := range n {
		s, l := shopRequest(i, end.Add(-spread+time.Duration(i)*step), logsPer)
		spans = append(spans, s...)
		logs = append(logs, l...)
		if len(spans) >= batch {
			flush()
		}
	}
	flush()
}

// beat feeds the registry a heartbeat of every shop service at now.
func beat(reg *registry.Registry, now time.Time) {
	for i, svc := range shopServices {
		hb := wire.Heartbeat{Service: svc, InstanceID: svc + "-0", Address: fmt.Sprintf("10.0.0.%d:8080", i+1), Version: "v1.2.3",
			StartedAt: now.Add(-time.Hour), SentAt: now, Interval: wire.Duration(2 * time.Second),
			Checks: []wire.CheckResult{{Name: "db", OK: svc != "payments", Message: map[bool]string{true: "", false: "bank api: connection refused"}[svc != "payments"]}},
			Routes: []wire.RouteSummary{{Method: "GET", Route: "/api/" + svc + "/:id", Requests: 40, Errors: int64(i), DurationSum: wire.Duration(40 * 20 * time.Millisecond),
				P50: wire.Duration(15 * time.Millisecond), P95: wire.Duration(40 * time.Millisecond), P99: wire.Duration(70 * time.Millisecond), Max: wire.Duration(90 * time.Millisecond)}},
		}
		if svc == "payments" {
			hb.Telemetry = wire.TelemetryStats{SpansDropped: 12, LogsDropped: 3, LocalLogsDropped: 5}
		}
		reg.Observe(hb, "127.0.0.1", now)
	}
}
