package agent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func testGaugeValue(t *testing.T, a *Agent) float64 {
	t.Helper()
	return testutil.ToFloat64(a.metrics.active)
}

func TestRequestDurationLabels(t *testing.T) {
	a, _ := newTestAgent(t)
	r := newEngine(a)
	for _, target := range []string{"/users/1", "/users/2", "/nope/a", "/nope/b", "/fail"} {
		serve(t, r, http.MethodGet, target, nil)
	}
	families, err := a.metrics.registry.Gather()
	if err != nil {
		t.Fatalf("gather: got %v, want nil", err)
	}
	counts := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "http_server_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			counts[labelString(m)] = m.GetHistogram().GetSampleCount()
		}
	}
	tests := []struct {
		name   string
		labels string
		want   uint64
	}{
		{name: "template", labels: "method=GET,route=/users/:id,status_code=200", want: 2},
		{name: "unmatched collapse", labels: "method=GET,route=unmatched,status_code=404", want: 2},
		{name: "server error", labels: "method=GET,route=/fail,status_code=503", want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := counts[tt.labels]; got != tt.want {
				t.Errorf("count{%s}: got %d, want %d (all: %v)", tt.labels, got, tt.want, counts)
			}
		})
	}
	if len(counts) != 3 {
		t.Errorf("series: got %d, want 3 (no raw paths): %v", len(counts), counts)
	}
	if got := testGaugeValue(t, a); got != 0 {
		t.Errorf("active requests: got %v, want 0", got)
	}
}

func labelString(m *dto.Metric) string {
	parts := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

func TestMetricsHandler(t *testing.T) {
	a, _ := newTestAgent(t)
	serve(t, newEngine(a), http.MethodGet, "/users/1", nil)
	w := httptest.NewRecorder()
	a.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := w.Body.String()
	for _, want := range []string{
		`http_server_request_duration_seconds_count{method="GET",route="/users/:id",status_code="200"} 1`,
		`http_server_active_requests 0`,
		`pilothouse_agent_telemetry_dropped_total{signal="spans"} 0`,
		`pilothouse_agent_telemetry_exported_total{signal="logs"} 0`,
		`pilothouse_agent_export_errors_total{signal="heartbeats"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics output: got no line %q", want)
		}
	}
}

// TestActiveRequestsCounted: the gauge counts a request while its handler
// runs (two at once: two), and drops back when they finish.
func TestActiveRequestsCounted(t *testing.T) {
	a, _ := newTestAgent(t)
	r := newEngine(a)
	inside, release := make(chan struct{}), make(chan struct{})
	r.GET("/hold", func(*gin.Context) {
		inside <- struct{}{}
		<-release
	})
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/hold", nil))
		}()
	}
	<-inside
	<-inside
	if got := testGaugeValue(t, a); got != 2 {
		t.Errorf("active requests while two handlers run: got %v, want 2", got)
	}
	close(release)
	<-done
	<-done
	if got := testGaugeValue(t, a); got != 0 {
		t.Errorf("active requests after: got %v, want 0", got)
	}
}
