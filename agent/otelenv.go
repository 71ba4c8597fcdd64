package agent

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
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
)

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

	headersVar := EnvOTLPTracesHeaders
	headers := c.getenv(headersVar)
	if headers == "" {
		headersVar = EnvOTLPHeaders
		headers = c.getenv(headersVar)
	}
	if c.traceHeaders, err = parseKeyValues(headersVar, headers); err != nil {
		return err
	}
	for _, h := range c.traceHeaders {
		if !validHeaderName(h.key) {
			return fmt.Errorf("%w: %s: %q is not a header name", ErrInvalidConfig, headersVar, h.key)
		}
		if strings.ContainsAny(h.value, "\r\n\x00") {
			return fmt.Errorf("%w: %s: the value of %q holds a line break or NUL", ErrInvalidConfig, headersVar, h.key)
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
	return nil
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
