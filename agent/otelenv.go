package agent

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/pilothouse/pilothouse/agent/internal/batch"
)

// More environment variables from the OpenTelemetry specification that
// the agent reads. Options given to New win over all of them.
const (
	// EnvServiceName names the service when New is given "".
	EnvServiceName = "OTEL_SERVICE_NAME"
	// EnvResourceAttributes adds resource attributes to every span and log
	// record: "deployment.environment=prod,team=payments".
	EnvResourceAttributes = "OTEL_RESOURCE_ATTRIBUTES"
	// EnvOTLPTracesHeaders and EnvOTLPHeaders add headers to span exports
	// (the first wins): "api-key=secret,x-tenant=shop".
	EnvOTLPTracesHeaders = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
	EnvOTLPHeaders       = "OTEL_EXPORTER_OTLP_HEADERS"
	// EnvSpanQueueSize and EnvLogQueueSize bound the export queues when
	// WithQueueSize is not given.
	EnvSpanQueueSize = "OTEL_BSP_MAX_QUEUE_SIZE"
	EnvLogQueueSize  = "OTEL_BLRP_MAX_QUEUE_SIZE"
	// EnvSpanBatchSize and EnvLogBatchSize are the most items one export
	// carries (default 512, at most the queue's size).
	EnvSpanBatchSize = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
	EnvLogBatchSize  = "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"
	// EnvSpanScheduleDelay and EnvLogScheduleDelay are how long, in
	// milliseconds, an item may wait for a full batch (default 1000).
	EnvSpanScheduleDelay = "OTEL_BSP_SCHEDULE_DELAY"
	EnvLogScheduleDelay  = "OTEL_BLRP_SCHEDULE_DELAY"
	// EnvSDKDisabled=true turns span and log export off. Request IDs,
	// trace context, metrics, local logs, heartbeats and policy stay on:
	// they are the agent's, not the OpenTelemetry SDK's.
	EnvSDKDisabled = "OTEL_SDK_DISABLED"
	// EnvOTLPTracesProtocol and EnvOTLPProtocol (the first wins) must be
	// unset or an OTLP/HTTP protocol when spans go to an endpoint from the
	// environment: the agent does not speak gRPC.
	EnvOTLPTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvOTLPProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	// EnvOTLPTracesTimeout and EnvOTLPTimeout (the first wins) bound one
	// span export request, in milliseconds (default 5000), unless
	// WithHTTPClient gave the agent its own client.
	EnvOTLPTracesTimeout = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
	EnvOTLPTimeout       = "OTEL_EXPORTER_OTLP_TIMEOUT"
)

// maxExportTimeout bounds an export timeout from the environment.
const maxExportTimeout = 10 * time.Minute

// checkOTLPProtocol refuses a gRPC protocol for an OTLP endpoint from the
// environment, which would otherwise fail every export to a gRPC port.
// Both OTLP/HTTP encodings are accepted: the agent sends protobuf, which
// every OTLP/HTTP receiver takes.
func (c *config) checkOTLPProtocol(specific string) error {
	name, p := c.firstSet(specific, EnvOTLPProtocol)
	switch p {
	case "", "http/protobuf", "http/json":
		return nil
	case "grpc":
		return fmt.Errorf("%w: %s=grpc: the agent exports OTLP over HTTP only; point the endpoint at an OTLP/HTTP receiver (port 4318 by convention) and set http/protobuf", ErrInvalidConfig, name)
	default:
		return fmt.Errorf("%w: %s=%q is not an OTLP protocol (http/protobuf, http/json or grpc)", ErrInvalidConfig, name, p)
	}
}

// maxScheduleDelay bounds a schedule delay from the environment.
const maxScheduleDelay = time.Hour

// exportBatch is one export queue's batch size and delay; zero fields
// mean the defaults.
type exportBatch struct {
	size  int
	delay time.Duration
}

// settings returns the queue's settings for a queue of the given size.
func (b exportBatch) settings(queue int) batch.Settings {
	s := batch.Settings{Size: queue, BatchSize: batchSize, Interval: flushInterval}
	if b.size > 0 {
		s.BatchSize = b.size
	}
	if b.delay > 0 {
		s.Interval = b.delay
	}
	return s
}

// maxQueueSize bounds a queue size from the environment: a typo of a few
// zeros should not reserve gigabytes.
const maxQueueSize = 1 << 20

// keyValue is one entry of a key=value list variable.
type keyValue struct{ key, value string }

// parseKeyValues parses the list format of OTEL_RESOURCE_ATTRIBUTES and
// the OTLP headers variables: comma-separated key=value entries, spaces
// around keys and values ignored, values percent-decoded. Empty entries
// are skipped. The error names the variable and the entry.
func parseKeyValues(name, s string) ([]keyValue, error) {
	var out []keyValue
	for entry := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		k, v, ok := strings.Cut(entry, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: %s: entry %q is not key=value", ErrInvalidConfig, name, strings.TrimSpace(entry))
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: value of %q: %w", ErrInvalidConfig, name, k, err)
		}
		out = append(out, keyValue{k, dv})
	}
	return out, nil
}

// readOTelEnv fills in what the variables above configure and options did
// not.
func (c *config) readOTelEnv() error {
	kvs, err := parseKeyValues(EnvResourceAttributes, c.getenv(EnvResourceAttributes))
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		c.resourceAttrs = append(c.resourceAttrs, attribute.String(kv.key, kv.value))
	}

	for _, s := range []*otlpSignal{&c.traces, &c.logs} {
		if err := c.readSignalEnv(s); err != nil {
			return err
		}
	}

	if c.spanQueue <= 0 {
		if c.spanQueue, err = queueSizeFromEnv(c.getenv, EnvSpanQueueSize); err != nil {
			return err
		}
	}
	if c.logQueue <= 0 {
		if c.logQueue, err = queueSizeFromEnv(c.getenv, EnvLogQueueSize); err != nil {
			return err
		}
	}
	if c.spanBatch, err = batchFromEnv(c.getenv, EnvSpanBatchSize, EnvSpanScheduleDelay, c.spanQueue); err != nil {
		return err
	}
	if c.logBatch, err = batchFromEnv(c.getenv, EnvLogBatchSize, EnvLogScheduleDelay, c.logQueue); err != nil {
		return err
	}

	switch v := strings.ToLower(strings.TrimSpace(c.getenv(EnvSDKDisabled))); v {
	case "", "false":
	case "true":
		c.otelDisabled = true
	default:
		return fmt.Errorf("%w: %s=%q is neither true nor false", ErrInvalidConfig, EnvSDKDisabled, v)
	}
	c.propagators, err = parsePropagators(c.getenv(EnvPropagators))
	return err
}

// batchFromEnv reads a queue's batch size and schedule delay; queue is
// its size, 0 for the default.
func batchFromEnv(getenv func(string) string, sizeVar, delayVar string, queue int) (exportBatch, error) {
	var b exportBatch
	if queue <= 0 {
		queue = DefaultQueueSize
	}
	if s := strings.TrimSpace(getenv(sizeVar)); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > queue {
			return b, fmt.Errorf("%w: %s=%q is not a whole number from 1 to the queue's size, %d", ErrInvalidConfig, sizeVar, s, queue)
		}
		b.size = n
	}
	if s := strings.TrimSpace(getenv(delayVar)); s != "" {
		d, err := millis(delayVar, s, maxScheduleDelay)
		if err != nil {
			return b, err
		}
		b.delay = d
	}
	return b, nil
}

// firstSet returns the first of the specific and the general variable
// that is set, with its name; the specific one wins (OTLP's per-signal
// rule). The value is trimmed.
func (c *config) firstSet(specific, general string) (name, value string) {
	if v := strings.TrimSpace(c.getenv(specific)); v != "" {
		return specific, v
	}
	return general, strings.TrimSpace(c.getenv(general))
}

// millis parses the value s of variable name as whole milliseconds from
// 1 to max.
func millis(name, s string, max time.Duration) (time.Duration, error) {
	ms, err := strconv.Atoi(s)
	if err != nil || ms < 1 || time.Duration(ms)*time.Millisecond > max {
		return 0, fmt.Errorf("%w: %s=%q is not a number of milliseconds from 1 to %d", ErrInvalidConfig, name, s, max.Milliseconds())
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// queueSizeFromEnv reads a queue size; 0 when the variable is unset.
func queueSizeFromEnv(getenv func(string) string, name string) (int, error) {
	s := strings.TrimSpace(getenv(name))
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxQueueSize {
		return 0, fmt.Errorf("%w: %s=%q is not a whole number from 1 to %d", ErrInvalidConfig, name, s, maxQueueSize)
	}
	return n, nil
}

// validHeaderName reports whether s is an HTTP header field name (an RFC
// 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
