package faults_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/demo"
	"github.com/pilothouse/pilothouse/controlplane/server"
	"github.com/pilothouse/pilothouse/controlplane/server/servertest"
)

// fastAuth keeps bcrypt cheap in tests.
var fastAuth = auth.Config{BcryptCost: bcrypt.MinCost}

// startDemo runs a demo on free loopback ports with its own store, no
// built-in traffic and no deliberate shop errors: every failed request
// in these tests is the agent's or the control plane's fault.
func startDemo(t *testing.T, dataDir string, opts demo.Options) *demo.Demo {
	t.Helper()
	opts.Addr, opts.DataDir = "127.0.0.1:0", dataDir
	opts.Rate, opts.ErrorRate = -1, -1
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 500 * time.Millisecond
	}
	opts.Server.Auth = fastAuth
	d, err := demo.Start(opts)
	if err != nil {
		t.Fatalf("start demo: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("close demo: %v", err)
		}
	})
	return d
}

// apiToken creates an API token with role in users.
func apiToken(t *testing.T, users *auth.Store, role auth.Role) string {
	t.Helper()
	secret, _, err := users.CreateToken(context.Background(), auth.NewToken{Kind: auth.KindAPI, Name: "faults-" + string(role), Role: role})
	if err != nil {
		t.Fatalf("create %s token: %v", role, err)
	}
	return secret
}

// startServer runs a bare control plane on a free port.
func startServer(t *testing.T, cfg server.Config) (*server.Server, string) {
	t.Helper()
	cfg.Auth = fastAuth
	url, srv := servertest.Start(t, cfg)
	return srv, url
}

// call sends one request with a bearer token and returns the status and
// the body.
func call(t *testing.T, method, url, token, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}

// getJSON GETs url with token into out and returns the status.
func getJSON(t *testing.T, token, url string, out any) int {
	t.Helper()
	code, _, body := call(t, http.MethodGet, url, token, "", nil)
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: status %d, decode %q: %v", url, code, body, err)
	}
	return code
}

// loadResult is what a steady load on the shop saw.
type loadResult struct {
	sent      int
	failed    int
	statuses  map[int]int
	errs      []string // transport errors, first few
	latencies []time.Duration
}

func (r loadResult) p99() time.Duration { return percentile(r.latencies, 0.99) }

func (r loadResult) String() string {
	return fmt.Sprintf("%d sent, %d failed (statuses %v, errors %q), p50 %v, p99 %v, max %v",
		r.sent, r.failed, r.statuses, r.errs, percentile(r.latencies, 0.5), r.p99(), percentile(r.latencies, 1))
}

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// steadyLoad sends GET url at rate requests per second until ctx ends and
// reports every outcome. Requests start on a fixed schedule whatever the
// answers take, so a slow shop shows as latency, not as fewer requests.
func steadyLoad(ctx context.Context, url string, rate float64) loadResult {
	client := &http.Client{Timeout: 10 * time.Second}
	var (
		mu  sync.Mutex
		res = loadResult{statuses: map[int]int{}}
		wg  sync.WaitGroup
		n   atomic.Int64
	)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return res
		case <-tick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := n.Add(1)
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/orders/%d", url, id), nil)
			start := time.Now()
			resp, err := client.Do(req)
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			res.sent++
			if err != nil {
				res.failed++
				if len(res.errs) < 3 {
					res.errs = append(res.errs, err.Error())
				}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			res.statuses[resp.StatusCode]++
			if resp.StatusCode != http.StatusOK {
				res.failed++
			}
			res.latencies = append(res.latencies, took)
		}()
	}
}

// runLoad is steadyLoad for a fixed time.
func runLoad(url string, rate float64, d time.Duration) loadResult {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return steadyLoad(ctx, url, rate)
}

// checkLatency fails the test when the fault run's p99 is more than
// twice the baseline's plus slack: a generous bound, since two shared
// cores make latency noisy, that still catches a request path that
// waits on the control plane (seconds).
func checkLatency(t *testing.T, base, fault loadResult, slack time.Duration) {
	t.Helper()
	if limit := 2*base.p99() + slack; fault.p99() > limit {
		t.Errorf("p99 under the fault: got %v, want at most %v (2 x baseline %v + %v)", fault.p99(), limit, base.p99(), slack)
	}
}

// ids makes trace, span and request IDs unique per (run, n).
func traceIDBytes(run, n uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, run|1<<63)
	binary.BigEndian.PutUint64(b[8:], n+1)
	return b
}

func spanIDBytes(n uint64, i int) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, (n+1)<<8|uint64(i+1))
	return b
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func resource(service string) *resourcepb.Resource {
	return &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", service), strAttr("service.instance.id", service+"-1")}}
}

// otlpTrace is one OTLP/protobuf trace of spans spans of service, all
// carrying requestID.
func otlpTrace(t testing.TB, service string, traceID []byte, n uint64, spans int, requestID string, at time.Time) []byte {
	t.Helper()
	var ss []*tracepb.Span
	for i := range spans {
		sp := &tracepb.Span{
			TraceId: traceID, SpanId: spanIDBytes(n, i), Name: "GET /orders/:id", Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: uint64(at.UnixNano()) + uint64(i)*1000, EndTimeUnixNano: uint64(at.UnixNano()) + uint64(i)*1000 + 5e6,
			Attributes: []*commonpb.KeyValue{strAttr("request_id", requestID), strAttr("http.route", "/orders/:id")},
		}
		if i > 0 {
			sp.ParentSpanId = spanIDBytes(n, 0)
		}
		ss = append(ss, sp)
	}
	return marshal(t, &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: resource(service), ScopeSpans: []*tracepb.ScopeSpans{{Spans: ss}},
	}}})
}

// otlpLogs is one OTLP/protobuf logs request of lines records of service
// carrying requestID.
func otlpLogs(t testing.TB, service string, lines int, requestID string, at time.Time) []byte {
	t.Helper()
	var rs []*logspb.LogRecord
	for i := range lines {
		rs = append(rs, &logspb.LogRecord{
			TimeUnixNano: uint64(at.UnixNano()) + uint64(i), SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO,
			Body:       &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("line %d", i)}},
			Attributes: []*commonpb.KeyValue{strAttr("request_id", requestID)},
		})
	}
	return marshal(t, &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: resource(service), ScopeLogs: []*logspb.ScopeLogs{{LogRecords: rs}},
	}}})
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

const protobufType = "application/x-protobuf"
