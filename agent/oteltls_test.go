package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePEM writes one PEM block to a new file in dir and returns its path.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientCertificate makes a self-signed client certificate and returns
// it parsed, with the paths of its PEM certificate and key files.
func clientCertificate(t *testing.T, dir string) (cert *x509.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "orders agent"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return cert, writePEM(t, dir, "client.pem", "CERTIFICATE", der), writePEM(t, dir, "client-key.pem", "PRIVATE KEY", keyDER)
}

// exportOneSpan serves one request through an agent configured by env
// and shuts it down, so that its span export has been tried.
func exportOneSpan(t *testing.T, env map[string]string) {
	t.Helper()
	a, err := New("orders", withEnv(func(k string) string { return env[k] }), WithLocalLog(io.Discard))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	serve(t, newEngine(a), http.MethodGet, "/users/1", nil)
	shutdown(t, a)
}

func (c *collector) requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.headers)
}

// TestOTLPCertificateFromEnvironment: a collector behind TLS with a
// certificate the system does not trust gets spans once
// OTEL_EXPORTER_OTLP_CERTIFICATE names it, and none without.
func TestOTLPCertificateFromEnvironment(t *testing.T) {
	col := newUnstartedCollector(t)
	col.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	col.StartTLS()
	dir := t.TempDir()
	caFile := writePEM(t, dir, "collector.pem", "CERTIFICATE", col.Certificate().Raw)

	exportOneSpan(t, map[string]string{EnvOTLPTracesEndpoint: col.URL + "/v1/traces"})
	if n := col.requests(); n != 0 {
		t.Fatalf("without the certificate: the collector got %d exports, want none (its certificate is not trusted)", n)
	}
	exportOneSpan(t, map[string]string{EnvOTLPTracesEndpoint: col.URL + "/v1/traces", EnvOTLPCertificate: caFile})
	if n := col.requests(); n == 0 {
		t.Fatalf("with %s: the collector got no export", EnvOTLPCertificate)
	}
}

// TestOTLPClientCertificateFromEnvironment: a collector that requires a
// client certificate (mutual TLS) gets spans when the client certificate
// and key variables name them, and none when they are not set.
func TestOTLPClientCertificateFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	clientCert, certFile, keyFile := clientCertificate(t, dir)
	col := newUnstartedCollector(t)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientCert)
	col.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	col.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	col.StartTLS()
	caFile := writePEM(t, dir, "collector.pem", "CERTIFICATE", col.Certificate().Raw)
	env := map[string]string{EnvOTLPTracesEndpoint: col.URL + "/v1/traces", EnvOTLPTracesCertificate: caFile}

	exportOneSpan(t, env)
	if n := col.requests(); n != 0 {
		t.Fatalf("without a client certificate: the collector got %d exports, want none", n)
	}
	env[EnvOTLPClientCertificate], env[EnvOTLPClientKey] = certFile, keyFile
	exportOneSpan(t, env)
	if n := col.requests(); n == 0 {
		t.Fatal("with a client certificate: the collector got no export")
	}
}

// TestOTLPLogsCertificateFromEnvironment: log exports to a collector
// behind TLS take their certificate authorities from the logs variable.
func TestOTLPLogsCertificateFromEnvironment(t *testing.T) {
	col := newUnstartedCollector(t)
	col.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	col.StartTLS()
	caFile := writePEM(t, t.TempDir(), "collector.pem", "CERTIFICATE", col.Certificate().Raw)
	logs := func() int {
		col.mu.Lock()
		defer col.mu.Unlock()
		return len(col.logs)
	}
	exportOneSpan(t, map[string]string{EnvOTLPLogsEndpoint: col.URL + "/v1/logs"})
	if n := logs(); n != 0 {
		t.Fatalf("without the certificate: the collector got %d log exports, want none", n)
	}
	exportOneSpan(t, map[string]string{EnvOTLPLogsEndpoint: col.URL + "/v1/logs", EnvOTLPLogsCertificate: caFile})
	if n := logs(); n == 0 {
		t.Fatalf("with %s: the collector got no log export", EnvOTLPLogsCertificate)
	}
}

func TestBadOTLPCertificateVariables(t *testing.T) {
	dir := t.TempDir()
	_, certFile, keyFile := clientCertificate(t, dir)
	_, otherCert, _ := clientCertificate(t, t.TempDir())
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{name: "missing file", env: map[string]string{EnvOTLPCertificate: filepath.Join(dir, "nope.pem")}, wantErr: EnvOTLPCertificate + ": open"},
		{name: "no certificate", env: map[string]string{EnvOTLPTracesCertificate: notPEM}, wantErr: EnvOTLPTracesCertificate + ": " + notPEM + " holds no PEM certificate"},
		{name: "certificate without key", env: map[string]string{EnvOTLPClientCertificate: certFile}, wantErr: EnvOTLPClientCertificate + " is set without"},
		{name: "key without certificate", env: map[string]string{EnvOTLPTracesClientKey: keyFile}, wantErr: EnvOTLPTracesClientKey + " is set without"},
		{name: "key of another certificate", env: map[string]string{EnvOTLPClientCertificate: otherCert, EnvOTLPClientKey: keyFile}, wantErr: EnvOTLPClientCertificate + " and " + EnvOTLPClientKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New("svc", withEnv(func(k string) string { return tt.env[k] }), WithLocalLog(io.Discard))
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want ErrInvalidConfig naming %s", err, tt.wantErr)
			}
		})
	}
}

// TestOTLPCertificateLeavesAGivenClientAlone: WithHTTPClient's client
// keeps its own TLS settings, as it keeps its own timeout.
func TestOTLPCertificateLeavesAGivenClientAlone(t *testing.T) {
	env := map[string]string{EnvOTLPTracesEndpoint: "https://col:4318/v1/traces", EnvOTLPCertificate: filepath.Join(t.TempDir(), "nope.pem")}
	hc := &http.Client{Transport: &http.Transport{}}
	a, err := New("svc", withEnv(func(k string) string { return env[k] }), WithLocalLog(io.Discard), WithHTTPClient(hc))
	if err != nil {
		t.Fatalf("New: %v (the variable does not apply to a given client)", err)
	}
	defer shutdown(t, a)
	if got := a.spans.exp.(*spanExporter).post.client; got != hc {
		t.Errorf("span client: got %p, want the given %p", got, hc)
	}
}
