package agent

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/pilothouse/pilothouse/agent/wire"
)

func TestParsePropagators(t *testing.T) {
	tests := []struct {
		in   string
		want propagators
	}{
		{in: "", want: propagators{traceContext: true, baggage: true}},
		{in: "tracecontext", want: propagators{traceContext: true}},
		{in: "baggage", want: propagators{baggage: true}},
		{in: " TraceContext , Baggage ", want: propagators{traceContext: true, baggage: true}},
		{in: "none", want: propagators{}},
	}
	for _, tt := range tests {
		got, err := parsePropagators(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parsePropagators(%q): got %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// TestPropagatorsEndToEnd sends a request that carries a trace context
// and baggage through a route that calls a downstream service with the
// agent's Transport, under each OTEL_PROPAGATORS setting, and checks what
// the server span's parent is and what the downstream call carries.
func TestPropagatorsEndToEnd(t *testing.T) {
	const (
		inTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
		inParent = "00f067aa0ba902b7"
	)
	tests := []struct {
		env         string
		wantParent  bool // the server span continues the caller's trace
		wantTrace   bool // the downstream call gets a traceparent
		wantBaggage bool // the downstream call gets the caller's baggage
	}{
		{env: "", wantParent: true, wantTrace: true, wantBaggage: true},
		{env: "tracecontext", wantParent: true, wantTrace: true},
		{env: "baggage", wantBaggage: true},
		{env: "none"},
	}
	for _, tt := range tests {
		t.Run("env="+tt.env, func(t *testing.T) {
			down := newDownstream(t, http.StatusOK)
			env := map[string]string{EnvPropagators: tt.env}
			a, rec := newTestAgent(t, withEnv(func(k string) string { return env[k] }))
			client := &http.Client{Transport: a.Transport(nil)}
			var member string
			r := gin.New()
			r.Use(a.Middleware())
			call := callDownstream(client, down.URL+"/x")
			r.GET("/call", func(c *gin.Context) {
				member = baggage.FromContext(c.Request.Context()).Member("user").Value()
				call(c)
			})
			w := serve(t, r, http.MethodGet, "/call", http.Header{
				"Traceparent":        {"00-" + inTrace + "-" + inParent + "-01"},
				"Baggage":            {"user=alice,tier=gold"},
				wire.HeaderRequestID: {"rid-prop"},
			})
			if w.Code != http.StatusOK {
				t.Fatalf("status: got %d, want 200", w.Code)
			}

			var sawServer, sawClient bool
			for _, s := range rec.Ended() {
				switch s.SpanKind() {
				case trace.SpanKindServer:
					sawServer = true
					continued := s.Parent().SpanID().String() == inParent && s.SpanContext().TraceID().String() == inTrace
					if continued != tt.wantParent {
						t.Errorf("server span continues the caller's trace: got %v, want %v (parent %s)", continued, tt.wantParent, s.Parent().SpanID())
					}
				case trace.SpanKindClient:
					sawClient = true
				}
			}
			if !sawServer || !sawClient {
				t.Fatalf("spans: server %v, client %v; want both", sawServer, sawClient)
			}
			if got := member == "alice"; got != tt.wantBaggage {
				t.Errorf("baggage in the handler's context: got member %q, want it present: %v", member, tt.wantBaggage)
			}

			down.mu.Lock()
			h := down.headers[0]
			down.mu.Unlock()
			if got := h.Get("Traceparent") != ""; got != tt.wantTrace {
				t.Errorf("downstream traceparent: got %q, want present: %v", h.Get("Traceparent"), tt.wantTrace)
			}
			if tt.wantTrace && tt.wantParent && !strings.Contains(h.Get("Traceparent"), inTrace) {
				t.Errorf("downstream traceparent %q: want trace %s", h.Get("Traceparent"), inTrace)
			}
			gotBaggage := h.Get("Baggage")
			if got := strings.Contains(gotBaggage, "user=alice") && strings.Contains(gotBaggage, "tier=gold"); got != tt.wantBaggage {
				t.Errorf("downstream baggage: got %q, want the caller's: %v", gotBaggage, tt.wantBaggage)
			}
			if got := h.Get(wire.HeaderRequestID); got != "rid-prop" {
				t.Errorf("downstream request ID: got %q, want rid-prop whatever the propagators", got)
			}
		})
	}
}
