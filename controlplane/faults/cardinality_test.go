package faults_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/dashboard"
	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/controlplane/server"
)

func heartbeat(service, instance string, routes ...wire.RouteSummary) []byte {
	now := time.Now().UTC()
	b, _ := json.Marshal(wire.Heartbeat{Service: service, InstanceID: instance, StartedAt: now.Add(-time.Minute), SentAt: now,
		Interval: wire.Duration(2 * time.Second), Routes: routes})
	return b
}

// metricValue reads one unlabelled sample from /metrics.
func metricValue(t *testing.T, base, token, name string) float64 {
	t.Helper()
	_, _, body := call(t, http.MethodGet, base+"/metrics", token, "", nil)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s: not exposed", name)
	return 0
}

func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// TestHighCardinality floods the control plane with distinct service,
// instance and route names through the heartbeat endpoint and with
// distinct service names through OTLP: the registry stays within its
// caps and counts what it refuses or folds, and the overview, the
// services API and the service map stay bounded.
func TestHighCardinality(t *testing.T) {
	srv, base := startServer(t, server.Config{DataDir: t.TempDir()})
	viewer := apiToken(t, srv.Auth(), auth.RoleViewer)
	heapBefore := heapMiB()

	const extra = 100
	post := func(body []byte) {
		t.Helper()
		if code, _, out := call(t, http.MethodPost, base+wire.PathHeartbeat, "", "application/json", body); code != http.StatusOK {
			t.Fatalf("heartbeat: got %d %s, want 200", code, out)
		}
	}
	for i := range registry.MaxServices + extra {
		post(heartbeat(fmt.Sprintf("flood-%04d", i), "i-1"))
	}
	for i := range registry.MaxInstancesPerService + extra {
		post(heartbeat("flood-0000", fmt.Sprintf("i-%d", i+1))) // i-1 exists already
	}
	var routes []wire.RouteSummary
	for i := range wire.MaxRoutes {
		routes = append(routes, wire.RouteSummary{Method: "GET", Route: fmt.Sprintf("/r/%d", i), Requests: 1})
	}
	post(heartbeat("flood-0001", "i-1", routes...))

	// OTLP: 2,000 services, each calling orders, which has no agent (so
	// the calls are a minute old: the map waits for a callee's span).
	const otlpServices = 2000
	now := time.Now().Add(-time.Minute)
	var rs []*tracepb.ResourceSpans
	for i := range otlpServices {
		tid := traceIDBytes(11, uint64(i))
		rs = append(rs, &tracepb.ResourceSpans{Resource: resource(fmt.Sprintf("otlp-%04d", i)), ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
			TraceId: tid, SpanId: spanIDBytes(uint64(i), 0), Name: "GET", Kind: tracepb.Span_SPAN_KIND_CLIENT,
			StartTimeUnixNano: uint64(now.UnixNano()), EndTimeUnixNano: uint64(now.UnixNano()) + 1e6,
			Attributes: []*commonpb.KeyValue{strAttr("peer.service", "orders")},
		}}}}})
	}
	if code, _, out := call(t, http.MethodPost, base+wire.PathTraces, "", protobufType,
		marshal(t, &coltracepb.ExportTraceServiceRequest{ResourceSpans: rs})); code != http.StatusOK {
		t.Fatalf("OTLP flood: got %d %s, want 200", code, out)
	}

	var svcs struct {
		Services []json.RawMessage `json:"services"`
	}
	getJSON(t, viewer, base+"/api/v1/services", &svcs)
	if got := len(svcs.Services); got != registry.MaxServices {
		t.Errorf("services API: got %d services, want the cap %d", got, registry.MaxServices)
	}
	svc, _ := srv.Registry().Service("flood-0000", time.Now())
	if got := len(svc.Instances); got != registry.MaxInstancesPerService {
		t.Errorf("instances of flood-0000: got %d, want the cap %d", got, registry.MaxInstancesPerService)
	}
	svc, _ = srv.Registry().Service("flood-0001", time.Now())
	if got := len(svc.Routes); got != registry.MaxRoutesPerService+1 {
		t.Errorf("routes of flood-0001: got %d, want the cap %d plus other", got, registry.MaxRoutesPerService)
	}
	if got, want := metricValue(t, base, viewer, "pilothouse_registry_dropped_heartbeats_total"), float64(2*extra); got != want {
		t.Errorf("dropped heartbeats: got %v, want %v", got, want)
	}
	if got, want := metricValue(t, base, viewer, "pilothouse_registry_folded_routes_total"), float64(wire.MaxRoutes-registry.MaxRoutesPerService); got != want {
		t.Errorf("folded routes: got %v, want %v", got, want)
	}

	for _, page := range []struct {
		path, testid string
		max          int
	}{
		{"/", "service-row", registry.MaxServices},
		{"/map", "map-node", dashboard.MaxMapServices + 1},
	} {
		code, _, body := call(t, http.MethodGet, base+page.path, viewer, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: got %d, want 200", page.path, code)
		}
		doc, err := goquery.NewDocumentFromReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		n := doc.Find(`[data-testid="` + page.testid + `"]`).Length()
		if n == 0 || n > page.max {
			t.Errorf("GET %s: got %d %s, want 1 to %d", page.path, n, page.testid, page.max)
		}
		t.Logf("GET %s: %d %s, %d KiB", page.path, n, page.testid, len(body)>>10)
	}
	t.Logf("heap: %.1f MiB before the floods, %.1f MiB after (in-process control plane and test)", heapBefore, heapMiB())
}
