package agent

import (
	"context"
	"errors"
	"io"
	"time"
	"unsafe"

	"github.com/gin-gonic/gin"
	"net/http"
	"regexp"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pilothouse/pilothouse/agent/wire"
)

func attrsOf(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func TestServerSpan(t *testing.T) {
	const parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	const parentSpan = "00f067aa0ba902b7"
	tests := []struct {
		name        string
		target      string
		header      http.Header
		wantName    string
		wantRoute   string
		wantStatus  string
		wantCode    codes.Code
		wantEvents  int
		wantParent  bool
		wantSampled bool
	}{
		{name: "route template", target: "/users/42", wantName: "GET /users/:id", wantRoute: "/users/:id",
			wantStatus: "200", wantCode: codes.Unset, wantSampled: true},
		{name: "unmatched", target: "/nope/x", wantName: "GET unmatched", wantRoute: "unmatched",
			wantStatus: "404", wantCode: codes.Unset, wantSampled: true},
		{name: "server error", target: "/fail", wantName: "GET /fail", wantRoute: "/fail",
			wantStatus: "503", wantCode: codes.Error, wantSampled: true},
		{name: "gin error", target: "/err", wantName: "GET /err", wantRoute: "/err",
			wantStatus: "400", wantCode: codes.Error, wantEvents: 1, wantSampled: true},
		{name: "incoming traceparent", target: "/users/1",
			header:   http.Header{"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-01"}},
			wantName: "GET /users/:id", wantRoute: "/users/:id", wantStatus: "200", wantCode: codes.Unset,
			wantParent: true, wantSampled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, rec := newTestAgent(t)
			w := serve(t, newEngine(a), http.MethodGet, tt.target, tt.header)
			spans := endedSpans(rec)
			if len(spans) != 1 {
				t.Fatalf("spans: got %d, want 1", len(spans))
			}
			s := spans[0]
			if s.Name() != tt.wantName {
				t.Errorf("name: got %q, want %q", s.Name(), tt.wantName)
			}
			if s.SpanKind() != trace.SpanKindServer {
				t.Errorf("kind: got %v, want server", s.SpanKind())
			}
			at := attrsOf(s.Attributes())
			want := map[string]string{
				"http.request.method":       "GET",
				"http.route":                tt.wantRoute,
				"http.response.status_code": tt.wantStatus,
				wire.AttrRequestID:          w.Header().Get(wire.HeaderRequestID),
				"url.path":                  regexp.MustCompile(`\?.*`).ReplaceAllString(tt.target, ""),
			}
			for k, v := range want {
				if at[k] != v {
					t.Errorf("attribute %s: got %q, want %q", k, at[k], v)
				}
			}
			if _, ok := at["client.address"]; !ok {
				t.Errorf("attribute client.address: got none, want one")
			}
			if s.Status().Code != tt.wantCode {
				t.Errorf("status: got %v, want %v", s.Status().Code, tt.wantCode)
			}
			if got := len(s.Events()); got != tt.wantEvents {
				t.Errorf("error events: got %d, want %d", got, tt.wantEvents)
			}
			if tt.wantParent {
				if got := s.SpanContext().TraceID().String(); got != parentTrace {
					t.Errorf("trace ID: got %s, want %s", got, parentTrace)
				}
				if got := s.Parent().SpanID().String(); got != parentSpan {
					t.Errorf("parent span ID: got %s, want %s", got, parentSpan)
				}
			} else if s.Parent().IsValid() {
				t.Errorf("parent: got %v, want none", s.Parent())
			}
			res := attrsOf(s.Resource().Attributes())
			if res[wire.AttrInstanceID] != "test-1" || res["service.name"] != "svc" {
				t.Errorf("resource: got %v, want service.name=svc and service.instance.id=test-1", res)
			}
		})
	}
}

func TestPanicEndsSpanAndRepanics(t *testing.T) {
	a, rec := newTestAgent(t)
	r := newEngine(a)
	r.GET("/panic", func(*gin.Context) { panic("kaboom") })
	defer func() {
		if p := recover(); p == nil {
			t.Errorf("panic: got none, want the handler's panic to propagate")
		}
		spans := rec.Ended()
		if len(spans) != 1 || spans[0].Status().Code != codes.Error {
			t.Errorf("spans: got %d (want 1) with error status", len(spans))
		}
		if got := testGaugeValue(t, a); got != 0 {
			t.Errorf("active requests: got %v, want 0", got)
		}
	}()
	serve(t, r, http.MethodGet, "/panic", nil)
}

func TestRequestID(t *testing.T) {
	minted := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name     string
		incoming string
		want     string // "" means a minted ID
	}{
		{name: "minted", incoming: ""},
		{name: "propagated", incoming: "req-abc-123", want: "req-abc-123"},
		{name: "invalid replaced", incoming: "has space", want: ""},
		{name: "too long replaced", incoming: string(make([]byte, 200)), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, rec := newTestAgent(t)
			var inHandler, viaLoggerCtx string
			r := newEngine(a)
			r.GET("/id", func(c *gin.Context) {
				inHandler = RequestID(c.Request.Context())
				viaLoggerCtx = stateFrom(c.Request.Context()).span.requestID
			})
			h := http.Header{}
			if tt.incoming != "" {
				h.Set(wire.HeaderRequestID, tt.incoming)
			}
			w := serve(t, r, http.MethodGet, "/id", h)
			got := w.Header().Get(wire.HeaderRequestID)
			if tt.want != "" && got != tt.want {
				t.Errorf("response header: got %q, want %q", got, tt.want)
			}
			if tt.want == "" && !minted.MatchString(got) {
				t.Errorf("response header: got %q, want 32 hex digits", got)
			}
			if inHandler != got || viaLoggerCtx != got {
				t.Errorf("request context: got %q / %q, want %q", inHandler, viaLoggerCtx, got)
			}
			if at := attrsOf(rec.Ended()[0].Attributes()); at[wire.AttrRequestID] != got {
				t.Errorf("span attribute: got %q, want %q", at[wire.AttrRequestID], got)
			}
		})
	}
}

func TestMintedRequestIDsDiffer(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := newRequestID()
		if seen[id] {
			t.Fatalf("duplicate request ID %q", id)
		}
		seen[id] = true
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		service string
		opts    []Option
		want    error
	}{
		{name: "no service", service: "", want: ErrNoService},
		{name: "bad url", service: "s", opts: []Option{WithControlPlane("ftp://x")}, want: ErrInvalidConfig},
		{name: "bad ratio", service: "s", opts: []Option{WithSampleRatio(2)}, want: ErrInvalidConfig},
		{name: "bad interval", service: "s", opts: []Option{WithHeartbeatInterval(time.Millisecond)}, want: ErrInvalidConfig},
		{name: "bad sampler env", service: "s", opts: []Option{withEnv(func(k string) string {
			if k == EnvTracesSampler {
				return "bogus"
			}
			return ""
		})}, want: ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.service, append([]Option{withEnv(noEnv), nil}, tt.opts...)...)
			if !errors.Is(err, tt.want) {
				t.Errorf("New: got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSamplerFromEnv(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		opts        []Option
		wantSampled bool
	}{
		{name: "default samples all", wantSampled: true},
		{name: "always_off", env: map[string]string{EnvTracesSampler: "always_off"}, wantSampled: false},
		{name: "ratio zero", env: map[string]string{EnvTracesSampler: "parentbased_traceidratio", EnvTracesSamplerArg: "0"}, wantSampled: false},
		{name: "ratio one", env: map[string]string{EnvTracesSampler: "traceidratio", EnvTracesSamplerArg: "1"}, wantSampled: true},
		{name: "option wins over env", env: map[string]string{EnvTracesSampler: "always_off"}, opts: []Option{WithSampleRatio(1)}, wantSampled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := func(k string) string { return tt.env[k] }
			a, err := New("s", append([]Option{withEnv(env), WithLocalLog(io.Discard)}, tt.opts...)...)
			if err != nil {
				t.Fatalf("New: got %v, want nil", err)
			}
			defer a.Shutdown(context.Background())
			_, span := a.tracer.Start(context.Background(), "x")
			span.End()
			if got := span.SpanContext().IsSampled(); got != tt.wantSampled {
				t.Errorf("sampled: got %v, want %v", got, tt.wantSampled)
			}
		})
	}
}

// TestEndpointsFromEnv: each signal's endpoint comes from its option,
// else its own variable, else the general one plus its path, else the
// control plane; the two signals are resolved independently.
func TestEndpointsFromEnv(t *testing.T) {
	tests := []struct {
		name                         string
		env                          map[string]string
		opts                         []Option
		wantTraces, wantLogs         string
		wantTracesToCP, wantLogsToCP bool
	}{
		{name: "control plane", env: map[string]string{wire.EnvURL: "http://cp:7070/"},
			wantTraces: "http://cp:7070/v1/traces", wantLogs: "http://cp:7070/v1/logs", wantTracesToCP: true, wantLogsToCP: true},
		{name: "otlp endpoint", env: map[string]string{wire.EnvURL: "http://cp:7070", EnvOTLPEndpoint: "http://col:4318/"},
			wantTraces: "http://col:4318/v1/traces", wantLogs: "http://col:4318/v1/logs"},
		{name: "signal endpoints", env: map[string]string{EnvOTLPTracesEndpoint: "http://col:4318/x", EnvOTLPLogsEndpoint: "http://col:4318/y", EnvOTLPEndpoint: "http://col:4318"},
			wantTraces: "http://col:4318/x", wantLogs: "http://col:4318/y"},
		{name: "traces elsewhere, logs to the control plane", env: map[string]string{wire.EnvURL: "http://cp:7070", EnvOTLPTracesEndpoint: "http://jaeger:4318/v1/traces"},
			wantTraces: "http://jaeger:4318/v1/traces", wantLogs: "http://cp:7070/v1/logs", wantLogsToCP: true},
		{name: "options", env: map[string]string{EnvOTLPTracesEndpoint: "http://col:4318/x", EnvOTLPLogsEndpoint: "http://col:4318/y"},
			opts:       []Option{WithTracesEndpoint("http://j:4318/v1/traces"), WithLogsEndpoint("http://l:4318/v1/logs")},
			wantTraces: "http://j:4318/v1/traces", wantLogs: "http://l:4318/v1/logs"},
		{name: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := newConfig(append([]Option{withEnv(func(k string) string { return tt.env[k] })}, tt.opts...))
			if err != nil {
				t.Fatalf("newConfig: got %v, want nil", err)
			}
			if cfg.traces.endpoint != tt.wantTraces || cfg.logs.endpoint != tt.wantLogs {
				t.Errorf("endpoints: got traces %q logs %q, want %q and %q", cfg.traces.endpoint, cfg.logs.endpoint, tt.wantTraces, tt.wantLogs)
			}
			if cfg.traces.toPlanes != tt.wantTracesToCP || cfg.logs.toPlanes != tt.wantLogsToCP {
				t.Errorf("to the control plane: got traces %v logs %v, want %v and %v", cfg.traces.toPlanes, cfg.logs.toPlanes, tt.wantTracesToCP, tt.wantLogsToCP)
			}
		})
	}
}

func TestRequestIDKeyIsCanonical(t *testing.T) {
	if got := http.CanonicalHeaderKey(wire.HeaderRequestID); got != requestIDKey {
		t.Errorf("canonical key: got %q, want %q", got, requestIDKey)
	}
}

// TestRequestStateSize keeps the per-request allocation in the 512-byte
// size class: it is the agent's largest allocation per request, and the
// next class up is 576 bytes (see BENCHMARKS.md).
func TestRequestStateSize(t *testing.T) {
	if got := unsafe.Sizeof(requestState{}); got > 512 {
		t.Errorf("requestState: got %d bytes, want at most 512", got)
	}
}
