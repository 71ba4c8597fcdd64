package loki

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestReadClientCounts reads counters shaped like loki-client-go's from
// a registry of their own: only the asked host counts, and a request is
// ok when its status is 2xx.
func TestReadClientCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: clientSentEntries}, []string{clientHostLabel})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: clientDroppedEntries}, []string{clientHostLabel})
	requests := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: clientRequests}, []string{clientStatusLabel, clientHostLabel})
	reg.MustRegister(sent, dropped, requests)

	if _, ok := readClientCounts(reg, "loki:3100"); ok {
		t.Errorf("before the client made its counters: got ok, want not found")
	}
	sent.WithLabelValues("loki:3100").Add(7)
	sent.WithLabelValues("other:3100").Add(100)
	dropped.WithLabelValues("loki:3100").Add(2)
	for _, status := range []string{"204", "200", "500", "429", "-1"} {
		requests.WithLabelValues(status, "loki:3100").Observe(0.1)
	}
	requests.WithLabelValues("204", "other:3100").Observe(0.1)

	got, ok := readClientCounts(reg, "loki:3100")
	want := clientCounts{sent: 7, dropped: 2, pushesOK: 2, pushesError: 3}
	if !ok || got != want {
		t.Errorf("got %+v (found %v), want %+v", got, ok, want)
	}
}

func TestClientCountsSince(t *testing.T) {
	tests := []struct {
		name                string
		now, earlier        clientCounts
		wantDelta, wantSeen clientCounts
	}{
		{name: "growth", now: clientCounts{sent: 5, dropped: 1, pushesOK: 2, pushesError: 1}, earlier: clientCounts{sent: 2, pushesOK: 1},
			wantDelta: clientCounts{sent: 3, dropped: 1, pushesOK: 1, pushesError: 1}, wantSeen: clientCounts{sent: 5, dropped: 1, pushesOK: 2, pushesError: 1}},
		{name: "a lower reading is not counted twice", now: clientCounts{sent: 1}, earlier: clientCounts{sent: 4},
			wantDelta: clientCounts{}, wantSeen: clientCounts{sent: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			delta, seen := tt.now.since(tt.earlier)
			if delta != tt.wantDelta || seen != tt.wantSeen {
				t.Errorf("got delta %+v seen %+v, want %+v and %+v", delta, seen, tt.wantDelta, tt.wantSeen)
			}
		})
	}
}
