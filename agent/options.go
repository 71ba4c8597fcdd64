package agent

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Option configures an Agent. Options that are nil are ignored; defaults
// are filled in after every option has been applied.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config is everything New needs. Zero values mean "use the default".
type config struct {
	// controlPlane is the first control-plane URL ("" for none), kept
	// for the checks that only ask whether there is a control plane;
	// planes is the whole list and the replica in use.
	controlPlane     string
	controlPlaneSet  bool
	controlPlaneURLs []string
	planes           *controlPlanes
	token            string
	tokenSet         bool
	instanceID       string
	address          string
	version          string

	sampleRatio    float64
	sampleRatioSet bool

	// traces and logs are where spans and log records are exported,
	// and how (endpoint, headers, timeout, TLS).
	traces, logs  otlpSignal
	heartbeat     time.Duration
	spanQueue     int
	logQueue      int
	resourceAttrs []attribute.KeyValue // from OTEL_RESOURCE_ATTRIBUTES
	// spanBatch and logBatch are the export batch sizes and delays (from
	// OTEL_BSP_* and OTEL_BLRP_*; zero means the default).
	spanBatch, logBatch exportBatch
	// otelDisabled is OTEL_SDK_DISABLED=true: no span or log export.
	otelDisabled bool
	// propagators is OTEL_PROPAGATORS: the W3C context read and written.
	propagators     propagators
	localLog        io.Writer
	localLogSet     bool
	logLevel        slog.Level
	accessLog       bool
	httpClient      *http.Client
	spanProcessors  []sdktrace.SpanProcessor
	outboundTimeout time.Duration
	policyFile      string
	policyWait      time.Duration
	// policyBackoffMin and policyBackoffMax bound the long-poll's retry
	// wait after an error.
	policyBackoffMin time.Duration
	policyBackoffMax time.Duration
	now              func() time.Time
	getenv           func(string) string
}

// Defaults used when an option is not given.
const (
	DefaultQueueSize     = 2048
	DefaultExportTimeout = 5 * time.Second
	batchSize            = 512
	flushInterval        = time.Second
)

// WithControlPlane sets the control plane's base URL (for example
// "http://127.0.0.1:7070"). The default is $PILOTHOUSE_URL; an empty URL
// disables export and heartbeats but the agent still works locally.
func WithControlPlane(url string) Option {
	return optionFunc(func(c *config) {
		c.controlPlaneURLs, c.controlPlaneSet = nil, true
		if url != "" {
			c.controlPlaneURLs = []string{url}
		}
	})
}

// WithControlPlanes sets the base URLs of several control-plane replicas
// that share one store. The agent talks to one at a time: when it does not
// answer (a network error, a 5xx or 429) the heartbeat, the policy
// long-poll and the span and log exporters move to the next one, round
// robin, and stay there while it works; the policy in force is kept
// meanwhile and the long-poll continues from its version. The default is
// $PILOTHOUSE_URL, which may be a comma-separated list; no URLs disables
// export and heartbeats.
func WithControlPlanes(urls ...string) Option {
	return optionFunc(func(c *config) {
		c.controlPlaneURLs, c.controlPlaneSet = append([]string(nil), urls...), true
	})
}

// WithToken sets the agent token sent as "Authorization: Bearer <token>".
// The default is $PILOTHOUSE_TOKEN.
func WithToken(token string) Option {
	return optionFunc(func(c *config) { c.token, c.tokenSet = token, true })
}

// WithInstanceID sets the instance ID. The default is hostname-pid-random.
func WithInstanceID(id string) Option {
	return optionFunc(func(c *config) { c.instanceID = id })
}

// WithAddress sets the host:port other services reach this instance at,
// reported in heartbeats: the dashboard lists it, and agents calling the
// service by name route to it. The default is $PILOTHOUSE_ADDRESS, else
// none.
func WithAddress(addr string) Option {
	return optionFunc(func(c *config) { c.address = addr })
}

// WithVersion sets the service version (resource attribute service.version,
// and the version the dashboard lists per instance). The default is the
// main module's version from the binary's build information, else its
// VCS revision (12 characters, "+dirty" when built from a modified tree),
// else none.
func WithVersion(v string) Option {
	return optionFunc(func(c *config) { c.version = v })
}

// WithSampleRatio samples this fraction of new traces (0..1), following the
// parent's decision when a traceparent arrives. The default is 1, or what
// OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG say.
func WithSampleRatio(ratio float64) Option {
	return optionFunc(func(c *config) { c.sampleRatio, c.sampleRatioSet = ratio, true })
}

// WithTracesEndpoint sends spans to this OTLP/HTTP traces URL (for example
// "http://collector:4318/v1/traces") instead of the control plane.
// The default is $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
// $OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces", else the control plane.
func WithTracesEndpoint(url string) Option {
	return optionFunc(func(c *config) { c.traces.endpoint = url })
}

// WithLogsEndpoint sends log records to this OTLP/HTTP logs URL (for
// example "http://collector:4318/v1/logs") instead of the control plane.
// The default is $OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, else
// $OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/logs", else the control plane.
// Request-ID log search needs the records to reach the control plane, so
// a collector in between should forward them there.
func WithLogsEndpoint(url string) Option {
	return optionFunc(func(c *config) { c.logs.endpoint = url })
}

// WithHeartbeatInterval sets how often the agent beats (default 5s).
func WithHeartbeatInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.heartbeat = d })
}

// WithQueueSize bounds the span and log export queues (default 2048 each).
// When a queue is full new items are dropped and counted.
func WithQueueSize(spans, logs int) Option {
	return optionFunc(func(c *config) { c.spanQueue, c.logQueue = spans, logs })
}

// WithLocalLog sets where log lines are also written as JSON (default
// os.Stderr). io.Discard turns local output off. The lines are written by
// a background goroutine, about 10 ms after they are logged (at once for
// Error and above), so a slow terminal or pipe never holds up a request;
// Shutdown writes what is left, and lines logged after it are written
// directly.
// When w falls 256 KiB behind, further lines are dropped and counted in
// pilothouse_agent_telemetry_dropped_total{signal="local_logs"}.
func WithLocalLog(w io.Writer) Option {
	return optionFunc(func(c *config) { c.localLog, c.localLogSet = w, true })
}

// WithLogLevel sets the minimum level of the agent's loggers (default Info).
func WithLogLevel(l slog.Level) Option {
	return optionFunc(func(c *config) { c.logLevel = l })
}

// WithAccessLog turns the one-line-per-request access log on or off
// (default on).
func WithAccessLog(on bool) Option {
	return optionFunc(func(c *config) { c.accessLog = on })
}

// WithHTTPClient sets the client used for export and heartbeats. Its
// Timeout should be set; the default client times out after 5s.
func WithHTTPClient(hc *http.Client) Option {
	return optionFunc(func(c *config) { c.httpClient = hc })
}

// WithSpanProcessor adds a span processor next to the agent's exporter, for
// example a tracetest.SpanRecorder in tests.
func WithSpanProcessor(sp sdktrace.SpanProcessor) Option {
	return optionFunc(func(c *config) {
		if sp != nil {
			c.spanProcessors = append(c.spanProcessors, sp)
		}
	})
}

// WithOutboundTimeout bounds every call made through Transport, including
// reading the response body. The default is no timeout.
func WithOutboundTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.outboundTimeout = d })
}

// WithPolicyFile keeps the policy in force in the file at path: every
// applied version is written there (a temporary file renamed over the old
// one), and New applies the file's policy at start, so that a restart with
// the control plane down still enforces the last good policy. A missing
// file is fine; an unreadable or invalid one is reported in the heartbeat
// and ignored.
func WithPolicyFile(path string) Option {
	return optionFunc(func(c *config) { c.policyFile = path })
}

// WithPolicyWait sets how long one policy long-poll waits for a change
// before the control plane answers "not modified" (default 30s, at most
// 2m).
func WithPolicyWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.policyWait = d })
}

// withPolicyBackoff replaces the long-poll's retry bounds (tests).
func withPolicyBackoff(lo, hi time.Duration) Option {
	return optionFunc(func(c *config) { c.policyBackoffMin, c.policyBackoffMax = lo, hi })
}

// withClock replaces time.Now (tests).
func withClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.now = now })
}

// withEnv replaces os.Getenv (tests).
func withEnv(getenv func(string) string) Option {
	return optionFunc(func(c *config) { c.getenv = getenv })
}
