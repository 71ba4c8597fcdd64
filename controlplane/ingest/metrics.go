package ingest

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Signal label values.
const (
	signalTraces     = "traces"
	signalLogs       = "logs"
	signalHeartbeats = "heartbeats"
)

// Result label values.
const (
	resultAccepted = "accepted"
	resultRejected = "rejected"
)

type metrics struct {
	spans        *prometheus.CounterVec
	logs         *prometheus.CounterVec
	heartbeats   *prometheus.CounterVec
	requests     *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	authFailures prometheus.Counter
}

// newMetrics builds the ingest collectors and registers them with reg
// when it is not nil. A collector already registered under the same name
// (a second Handler on one registry) is shared rather than failing.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		spans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilothouse_ingest_spans_total",
			Help: "Spans received over OTLP/HTTP, by result (accepted, rejected).",
		}, []string{"result"}),
		logs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilothouse_ingest_logs_total",
			Help: "Log records received over OTLP/HTTP, by result (accepted, rejected).",
		}, []string{"result"}),
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilothouse_ingest_heartbeats_total",
			Help: "Agent heartbeats received, by result (accepted, rejected).",
		}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilothouse_ingest_requests_total",
			Help: "Ingest HTTP requests, by signal and response status code.",
		}, []string{"signal", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilothouse_ingest_bytes_total",
			Help: "Request body bytes read, as sent (before decompression), by signal.",
		}, []string{"signal"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pilothouse_ingest_auth_failures_total",
			Help: "Ingest requests refused for a missing or wrong token.",
		}),
	}
	if reg == nil {
		return m
	}
	m.spans = register(reg, m.spans)
	m.logs = register(reg, m.logs)
	m.heartbeats = register(reg, m.heartbeats)
	m.requests = register(reg, m.requests)
	m.bytes = register(reg, m.bytes)
	m.authFailures = register(reg, m.authFailures)
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A clash with a collector of another shape: keep counting
		// unregistered rather than panic inside the host.
	}
	return c
}
