package agent

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pilothouse/pilothouse/agent/internal/batch"
)

// Signals named in the telemetry counters' "signal" label.
const (
	signalSpans      = "spans"
	signalLogs       = "logs"
	signalHeartbeats = "heartbeats"
	signalLocalLogs  = "local_logs"
)

// metrics are the agent's Prometheus instruments, on its own registry.
type metrics struct {
	registry *prometheus.Registry
	duration *prometheus.HistogramVec
	// inFlight is read by the in-flight gauge at scrape time: one atomic
	// add per request start and end, where a Gauge would loop on a
	// compare-and-swap of a float.
	inFlight atomic.Int64
	active   prometheus.GaugeFunc
}

// observe records one request's duration; ri caches the histogram's
// children for the request's method and route.
func (m *metrics) observe(ri *routeInfo, method, route string, status int, d time.Duration) {
	o, ok := ri.observers.Load(status)
	if !ok {
		o, _ = ri.observers.LoadOrStore(status, m.duration.WithLabelValues(method, route, statusText(status)))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_server_request_duration_seconds",
			Help:    "Duration of HTTP server requests by method, route template and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route", "status_code"}),
	}
	m.active = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "http_server_active_requests",
		Help: "Number of HTTP server requests in flight.",
	}, func() float64 { return float64(m.inFlight.Load()) })
	m.registry.MustRegister(
		m.duration,
		m.active,
		&telemetryCollector{a: a},
		&policyCollector{a: a},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// MetricsHandler serves the agent's own registry in the Prometheus text
// format. It is safe for concurrent use.
func (a *Agent) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{Registry: a.metrics.registry})
}

// Registry returns the agent's Prometheus registry so that the service can
// add its own collectors to the same endpoint.
func (a *Agent) Registry() *prometheus.Registry { return a.metrics.registry }

var (
	droppedDesc = prometheus.NewDesc("pilothouse_agent_telemetry_dropped_total",
		"Telemetry items dropped because a queue was full or an export failed.", []string{"signal"}, nil)
	exportedDesc = prometheus.NewDesc("pilothouse_agent_telemetry_exported_total",
		"Telemetry items accepted by the receiver.", []string{"signal"}, nil)
	errorsDesc = prometheus.NewDesc("pilothouse_agent_export_errors_total",
		"Export requests that failed.", []string{"signal"}, nil)
	queuedDesc = prometheus.NewDesc("pilothouse_agent_telemetry_queued",
		"Telemetry items waiting in an export queue.", []string{"signal"}, nil)
)

// telemetryCollector reads the queues' counters at scrape time.
type telemetryCollector struct{ a *Agent }

func (c *telemetryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- droppedDesc
	ch <- exportedDesc
	ch <- errorsDesc
	ch <- queuedDesc
}

func (c *telemetryCollector) Collect(ch chan<- prometheus.Metric) {
	emit := func(signal string, s batch.Stats) {
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(s.Dropped), signal)
		ch <- prometheus.MustNewConstMetric(exportedDesc, prometheus.CounterValue, float64(s.Exported), signal)
		ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(s.Errors), signal)
		ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(s.Queued), signal)
	}
	emit(signalSpans, c.a.spanStats())
	emit(signalLogs, c.a.logStats())
	emit(signalHeartbeats, c.a.heartbeatStats())
	emit(signalLocalLogs, c.a.localLogStats())
}

var (
	policyActionsDesc = prometheus.NewDesc("pilothouse_agent_policy_actions_total",
		"Requests a policy rule acted on (or matched and let pass), by rule and action.", []string{"rule", "action"}, nil)
	policyVersionDesc = prometheus.NewDesc("pilothouse_agent_policy_version",
		"Version of the policy in force (0 for none).", nil, nil)
	breakerStateDesc = prometheus.NewDesc("pilothouse_agent_breaker_state",
		"State of a circuit breaker: 0 closed, 1 open, 2 half-open.", []string{"rule"}, nil)
)

// policyCollector reads the rule counters at scrape time: the request path
// only increments atomics.
type policyCollector struct{ a *Agent }

func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- policyActionsDesc
	ch <- policyVersionDesc
	ch <- breakerStateDesc
}

func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	version, _, _, rules, breakers := c.a.policyReport(c.a.cfg.now())
	ch <- prometheus.MustNewConstMetric(policyVersionDesc, prometheus.GaugeValue, float64(version))
	for _, r := range rules {
		ch <- prometheus.MustNewConstMetric(policyActionsDesc, prometheus.CounterValue, float64(r.Count), r.RuleID, r.Action)
	}
	for _, b := range breakers {
		v := 0.0
		switch b.State {
		case "open":
			v = 1
		case "half-open":
			v = 2
		}
		ch <- prometheus.MustNewConstMetric(breakerStateDesc, prometheus.GaugeValue, v, b.RuleID)
	}
}

// statusText avoids an allocation for common status codes.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 201:
		return "201"
	case 204:
		return "204"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 429:
		return "429"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}
