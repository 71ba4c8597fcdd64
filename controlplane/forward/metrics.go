package forward

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricNames names a forwarder's instruments (each with its help text).
type MetricNames struct {
	// Forwarded counts items the backend accepted.
	Forwarded, ForwardedHelp string
	// Dropped counts items not forwarded, by label "reason".
	Dropped, DroppedHelp string
	// Requests counts requests to the backend, by label "result" (ok, error).
	Requests, RequestsHelp string
	// Queued is a gauge of batches waiting to be sent.
	Queued, QueuedHelp string
}

// Metrics are a forwarder's Prometheus instruments. Every drop reason and
// both request results are created at zero, so dashboards see the series
// before the first event.
type Metrics struct {
	Forwarded prometheus.Counter
	Dropped   *prometheus.CounterVec
	Requests  *prometheus.CounterVec
	names     MetricNames
}

// NewMetrics builds the instruments with the drop reasons the forwarder
// uses (DropQueueFull and DropClosed among them).
func NewMetrics(n MetricNames, reasons ...string) *Metrics {
	m := &Metrics{
		Forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: n.Forwarded, Help: n.ForwardedHelp}),
		Dropped:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: n.Dropped, Help: n.DroppedHelp}, []string{"reason"}),
		Requests:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: n.Requests, Help: n.RequestsHelp}, []string{"result"}),
		names:     n,
	}
	for _, r := range []string{"ok", "error"} {
		m.Requests.WithLabelValues(r)
	}
	for _, r := range reasons {
		m.Dropped.WithLabelValues(r)
	}
	return m
}

// Drop counts n items dropped for reason; it fits Config.Drop.
func (m *Metrics) Drop(reason string, n int) { m.Dropped.WithLabelValues(reason).Add(float64(n)) }

// Request counts one request to the backend by its outcome.
func (m *Metrics) Request(err error) {
	if err == nil {
		m.Requests.WithLabelValues("ok").Inc()
		return
	}
	m.Requests.WithLabelValues("error").Inc()
}

// Register registers the instruments, and a gauge of queued batches read
// from queued, with reg; a nil reg registers nothing.
func (m *Metrics) Register(reg prometheus.Registerer, queued func() int) error {
	if reg == nil {
		return nil
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: m.names.Queued, Help: m.names.QueuedHelp},
		func() float64 { return float64(queued()) })
	for _, c := range []prometheus.Collector{m.Forwarded, m.Dropped, m.Requests, gauge} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("forward: register metrics: %w", err)
		}
	}
	return nil
}
