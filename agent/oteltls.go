package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
)

// The OTLP TLS variables, for span exports (the specific one of each pair
// wins; the _LOGS_ ones in otlpsignal.go are the same for log exports).
// They apply unless WithHTTPClient gave the agent its own client, which
// keeps its own TLS settings.
const (
	// EnvOTLPTracesCertificate and EnvOTLPCertificate name a PEM file of
	// the certificate authorities that the span endpoint's certificate is
	// checked against, instead of the system's.
	EnvOTLPTracesCertificate = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"
	EnvOTLPCertificate       = "OTEL_EXPORTER_OTLP_CERTIFICATE"
	// EnvOTLPTracesClientCertificate, EnvOTLPClientCertificate and the
	// key variables name the PEM certificate chain and private key the
	// agent presents to the span endpoint (mutual TLS); both or neither.
	EnvOTLPTracesClientCertificate = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE"
	EnvOTLPClientCertificate       = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
	EnvOTLPTracesClientKey         = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"
	EnvOTLPClientKey               = "OTEL_EXPORTER_OTLP_CLIENT_KEY"
)

// tlsFromEnv reads one signal's OTLP TLS variables; nil when none is set.
func (c *config) tlsFromEnv(vars otlpVars) (*tls.Config, error) {
	caVar, caFile := c.firstSet(vars.certificate, EnvOTLPCertificate)
	certVar, certFile := c.firstSet(vars.clientCertificate, EnvOTLPClientCertificate)
	keyVar, keyFile := c.firstSet(vars.clientKey, EnvOTLPClientKey)
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, caVar, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s: %s holds no PEM certificate", ErrInvalidConfig, caVar, caFile)
		}
	}
	switch {
	case certFile != "" && keyFile != "":
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s and %s: %w", ErrInvalidConfig, certVar, keyVar, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	case certFile != "":
		return nil, fmt.Errorf("%w: %s is set without %s", ErrInvalidConfig, certVar, vars.clientKey+" or "+EnvOTLPClientKey)
	case keyFile != "":
		return nil, fmt.Errorf("%w: %s is set without %s", ErrInvalidConfig, keyVar, vars.clientCertificate+" or "+EnvOTLPClientCertificate)
	}
	return tc, nil
}

// withTLS returns a copy of client whose transport uses tc. The client
// is the agent's own (WithHTTPClient was not given), so its transport is
// an *http.Transport.
func withTLS(client *http.Client, tc *tls.Config) *http.Client {
	c := *client
	base, ok := c.Transport.(*http.Transport)
	if !ok || base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	t.TLSClientConfig = tc
	c.Transport = t
	return &c
}
