package agent

import (
	"context"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// TestHostGlobalsUntouched: an agent that starts, serves, exports and
// shuts down leaves the host's OpenTelemetry globals and Prometheus's
// default registry as they were.
func TestHostGlobalsUntouched(t *testing.T) {
	families := func() []string {
		t.Helper()
		mfs, err := prometheus.DefaultGatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, mf := range mfs {
			names = append(names, mf.GetName())
		}
		return names
	}
	tp, prop, mp := otel.GetTracerProvider(), otel.GetTextMapPropagator(), otel.GetMeterProvider()
	before := families()

	cp := newFakeControlPlane(t)
	env := map[string]string{wire.EnvURL: cp.URL}
	a, err := New("orders", withEnv(func(k string) string { return env[k] }), WithLocalLog(io.Discard), WithHeartbeatInterval(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, newEngine(a), http.MethodGet, "/users/1", nil)
	a.MetricsHandler() // the agent's own registry, not the default one
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cp.mu.Lock()
	exported := len(cp.traces) > 0 && len(cp.logs) > 0
	cp.mu.Unlock()
	if !exported {
		t.Fatal("the agent exported no spans or logs; the check below would prove little")
	}

	if otel.GetTracerProvider() != tp || otel.GetMeterProvider() != mp {
		t.Error("the otel global tracer or meter provider changed")
	}
	if otel.GetTextMapPropagator() != prop {
		t.Error("the otel global propagator changed")
	}
	if after := families(); !slices.Equal(after, before) {
		t.Errorf("Prometheus default registry: got families %v, want %v", after, before)
	}
}
