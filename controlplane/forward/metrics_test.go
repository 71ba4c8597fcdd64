package forward

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(MetricNames{
		Forwarded: "x_forwarded_total", ForwardedHelp: "f.",
		Dropped: "x_dropped_total", DroppedHelp: "d.",
		Requests: "x_requests_total", RequestsHelp: "r.",
		Queued: "x_queue_batches", QueuedHelp: "q.",
	}, DropQueueFull, DropClosed)
	if err := m.Register(reg, func() int { return 3 }); err != nil {
		t.Fatalf("Register: %v", err)
	}
	m.Drop(DropQueueFull, 4)
	m.Request(nil)
	m.Request(errors.New("down"))
	m.Request(errors.New("down"))
	m.Forwarded.Add(7)

	want := `
# HELP x_dropped_total d.
# TYPE x_dropped_total counter
x_dropped_total{reason="closed"} 0
x_dropped_total{reason="queue_full"} 4
# HELP x_forwarded_total f.
# TYPE x_forwarded_total counter
x_forwarded_total 7
# HELP x_queue_batches q.
# TYPE x_queue_batches gauge
x_queue_batches 3
# HELP x_requests_total r.
# TYPE x_requests_total counter
x_requests_total{result="error"} 2
x_requests_total{result="ok"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if err := m.Register(nil, nil); err != nil {
		t.Errorf("Register(nil): got %v, want nil", err)
	}
}
