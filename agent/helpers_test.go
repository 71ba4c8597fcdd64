package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/agent/wire"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// noEnv isolates tests from the machine's environment.
func noEnv(string) string { return "" }

// newTestAgent returns an agent with a span recorder, no local log output
// and no control plane unless opts say otherwise. It is shut down when the
// test ends.
func newTestAgent(t *testing.T, opts ...Option) (*Agent, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	base := []Option{withEnv(noEnv), WithLocalLog(io.Discard), WithSpanProcessor(rec), WithInstanceID("test-1")}
	a, err := New("svc", append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	return a, rec
}

// flushLocalLog waits until the agent's local log writer has written
// every line logged so far.
func flushLocalLog(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.sink.local.Flush(ctx); err != nil {
		t.Fatalf("flush the local log: %v", err)
	}
}

// newEngine returns a Gin engine with the agent's middleware and handlers
// for a few routes.
func newEngine(a *Agent) *gin.Engine {
	r := gin.New()
	r.Use(a.Middleware())
	r.GET("/users/:id", func(c *gin.Context) {
		Logger(c).Info("loading user", "user", c.Param("id"))
		c.String(http.StatusOK, "user "+c.Param("id"))
	})
	r.GET("/fail", func(c *gin.Context) { c.String(http.StatusServiceUnavailable, "down") })
	r.GET("/err", func(c *gin.Context) {
		_ = c.Error(errTest)
		c.String(http.StatusBadRequest, "bad")
	})
	return r
}

var errTest = &testError{"boom"}

type testError struct{ s string }

func (e *testError) Error() string { return e.s }

func serve(t *testing.T, h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func endedSpans(rec *tracetest.SpanRecorder) []sdktrace.ReadOnlySpan { return rec.Ended() }

// fakeControlPlane records what agents send it.
type fakeControlPlane struct {
	*httptest.Server
	mu         sync.Mutex
	traces     []*coltrace.ExportTraceServiceRequest
	logs       []*collogs.ExportLogsServiceRequest
	heartbeats []wire.Heartbeat
	auth       []string
	logType    string
}

func newFakeControlPlane(t *testing.T) *fakeControlPlane {
	t.Helper()
	cp := &fakeControlPlane{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.PathTraces, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cp.mu.Lock()
		cp.traces = append(cp.traces, &req)
		cp.auth = append(cp.auth, r.Header.Get(wire.HeaderAuthorization))
		cp.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	})
	mux.HandleFunc("POST "+wire.PathLogs, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collogs.ExportLogsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cp.mu.Lock()
		cp.logs = append(cp.logs, &req)
		cp.auth = append(cp.auth, r.Header.Get(wire.HeaderAuthorization))
		cp.logType = r.Header.Get("Content-Type")
		cp.mu.Unlock()
	})
	mux.HandleFunc("POST "+wire.PathHeartbeat, func(w http.ResponseWriter, r *http.Request) {
		hb, err := wire.DecodeHeartbeat(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		cp.mu.Lock()
		cp.heartbeats = append(cp.heartbeats, hb)
		cp.auth = append(cp.auth, r.Header.Get(wire.HeaderAuthorization))
		cp.mu.Unlock()
	})
	cp.Server = httptest.NewServer(mux)
	t.Cleanup(cp.Close)
	return cp
}
