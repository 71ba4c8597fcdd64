package agent

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// The signal-specific OTLP variables for log records. Each falls back to
// the general variable without _LOGS_ (OTEL_EXPORTER_OTLP_ENDPOINT and so
// on), as the OpenTelemetry specification says; the _TRACES_ ones are
// the same for spans.
const (
	// EnvOTLPLogsEndpoint is the full URL log records are posted to.
	EnvOTLPLogsEndpoint = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
	// EnvOTLPLogsHeaders adds headers to log exports.
	EnvOTLPLogsHeaders = "OTEL_EXPORTER_OTLP_LOGS_HEADERS"
	// EnvOTLPLogsTimeout bounds one log export, in milliseconds.
	EnvOTLPLogsTimeout = "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"
	// EnvOTLPLogsProtocol must be unset or an OTLP/HTTP protocol.
	EnvOTLPLogsProtocol = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"
	// EnvOTLPLogsCertificate, EnvOTLPLogsClientCertificate and
	// EnvOTLPLogsClientKey set the TLS of log exports.
	EnvOTLPLogsCertificate       = "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE"
	EnvOTLPLogsClientCertificate = "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE"
	EnvOTLPLogsClientKey         = "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY"
)

// otlpVars names one signal's specific OTLP variables; each has a general
// counterpart without the signal in its name.
type otlpVars struct {
	endpoint, headers, timeout, protocol, certificate, clientCertificate, clientKey string
}

var (
	tracesVars = otlpVars{
		endpoint: EnvOTLPTracesEndpoint, headers: EnvOTLPTracesHeaders, timeout: EnvOTLPTracesTimeout,
		protocol: EnvOTLPTracesProtocol, certificate: EnvOTLPTracesCertificate,
		clientCertificate: EnvOTLPTracesClientCertificate, clientKey: EnvOTLPTracesClientKey,
	}
	logsVars = otlpVars{
		endpoint: EnvOTLPLogsEndpoint, headers: EnvOTLPLogsHeaders, timeout: EnvOTLPLogsTimeout,
		protocol: EnvOTLPLogsProtocol, certificate: EnvOTLPLogsCertificate,
		clientCertificate: EnvOTLPLogsClientCertificate, clientKey: EnvOTLPLogsClientKey,
	}
)

// otlpSignal is where one signal (spans or log records) is exported, and
// how: what the options and the OTLP variables say.
type otlpSignal struct {
	what string // "spans" or "logs", for errors
	path string // the signal's OTLP/HTTP path, "/v1/traces" or "/v1/logs"
	vars otlpVars

	// endpoint is the URL batches are posted to; "" exports nothing.
	endpoint string
	// toPlanes is set when endpoint is the signal's path on a
	// control-plane replica: batches then follow the agent from replica
	// to replica.
	toPlanes bool
	headers  []keyValue
	// timeout bounds one export request (0: the HTTP client's own).
	timeout time.Duration
	// tls is the TLS setting of exports; nil for the default.
	tls *tls.Config
}

// resolveEndpoint fills in s.endpoint when no option set it: the
// signal's endpoint variable, else the general endpoint plus the signal's
// path, else the control plane's path. An endpoint from the environment
// must not ask for gRPC.
func (c *config) resolveEndpoint(s *otlpSignal) error {
	if s.endpoint == "" {
		s.endpoint = strings.TrimSpace(c.getenv(s.vars.endpoint))
		if s.endpoint == "" {
			if base := strings.TrimSpace(c.getenv(EnvOTLPEndpoint)); base != "" {
				s.endpoint = strings.TrimRight(base, "/") + s.path
			}
		}
		if s.endpoint != "" {
			if err := c.checkOTLPProtocol(s.vars.protocol); err != nil {
				return err
			}
		}
	}
	if s.endpoint == "" && c.controlPlane != "" {
		s.endpoint = c.controlPlane + s.path
	}
	s.endpoint = strings.TrimSpace(s.endpoint)
	s.toPlanes = c.planes.servesPath(s.endpoint, s.path)
	if s.endpoint != "" {
		if err := checkURL(s.endpoint); err != nil {
			return fmt.Errorf("%w: %s endpoint: %w", ErrInvalidConfig, s.what, err)
		}
	}
	return nil
}

// readSignalEnv reads the signal's headers, and, unless an option gave
// the agent its own HTTP client (which keeps its own timeout and TLS),
// its timeout and TLS variables.
func (c *config) readSignalEnv(s *otlpSignal) error {
	headersVar, headers := c.firstSet(s.vars.headers, EnvOTLPHeaders)
	var err error
	if s.headers, err = parseKeyValues(headersVar, headers); err != nil {
		return err
	}
	for _, h := range s.headers {
		if !validHeaderName(h.key) {
			return fmt.Errorf("%w: %s: %q is not a header name", ErrInvalidConfig, headersVar, h.key)
		}
		if strings.ContainsAny(h.value, "\r\n\x00") {
			return fmt.Errorf("%w: %s: the value of %q holds a line break or NUL", ErrInvalidConfig, headersVar, h.key)
		}
	}
	if c.httpClient != nil {
		return nil
	}
	if name, v := c.firstSet(s.vars.timeout, EnvOTLPTimeout); v != "" {
		if s.timeout, err = millis(name, v, maxExportTimeout); err != nil {
			return err
		}
	}
	s.tls, err = c.tlsFromEnv(s.vars)
	return err
}

// poster returns the poster of the signal's batches. The Pilothouse
// token goes only to the control plane, never to a third-party OTLP
// endpoint.
func (c *config) poster(s otlpSignal) poster {
	p := poster{url: s.endpoint, headers: s.headers, client: c.signalClient(s), what: s.what}
	if c.planes.owns(s.endpoint) {
		p.token = c.token
	}
	if s.toPlanes {
		p.planes, p.path = c.planes, s.path
	}
	return p
}

// signalClient is the agent's HTTP client with the signal's TLS and
// timeout, if the environment set them.
func (c *config) signalClient(s otlpSignal) *http.Client {
	client := c.httpClient
	if s.tls != nil {
		client = withTLS(client, s.tls)
	}
	if s.timeout > 0 {
		cl := *client
		cl.Timeout = s.timeout
		client = &cl
	}
	return client
}

// newSignals returns the unresolved settings of both signals.
func newSignals() (traces, logs otlpSignal) {
	return otlpSignal{what: "spans", path: wire.PathTraces, vars: tracesVars},
		otlpSignal{what: "logs", path: wire.PathLogs, vars: logsVars}
}
