package server

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/ingest"
	"github.com/pilothouse/pilothouse/controlplane/loki"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/controlplane/tracebackend"
)

// TestEnginesTeeIngest: with LokiURL and OTLPForwardURL set, what ingest
// stores is also pushed to Loki and exported over OTLP/HTTP, and the
// forwarders' metrics are on /metrics.
func TestEnginesTeeIngest(t *testing.T) {
	var mu sync.Mutex
	var lokiBodies [][]byte
	var spans []store.Span
	lokiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		plain, err := snappy.Decode(nil, raw)
		if r.URL.Path != loki.PushPath || err != nil {
			http.Error(w, "bad push", http.StatusBadRequest)
			return
		}
		mu.Lock()
		lokiBodies = append(lokiBodies, plain)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer lokiSrv.Close()
	otlpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got, _, err := ingest.DecodeTraces(body, ingest.ContentTypeProtobuf)
		if r.URL.Path != tracebackend.TracesPath || err != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		spans = append(spans, got...)
		mu.Unlock()
	}))
	defer otlpSrv.Close()

	url, srv := listenAndServe(t, Config{
		DataDir: t.TempDir(), AdminPassword: testAdminPassword,
		LokiURL: lokiSrv.URL, OTLPForwardURL: otlpSrv.URL,
	})
	postFixtures(t, url)
	stop(t, srv) // drains the forwarders

	mu.Lock()
	defer mu.Unlock()
	if len(lokiBodies) != 1 || !bytes.Contains(lokiBodies[0], []byte("cart loaded")) || !bytes.Contains(lokiBodies[0], []byte("req-restart-1")) {
		t.Errorf("loki pushes: got %q, want one with the line and its request ID", lokiBodies)
	}
	if len(spans) != 1 || spans[0].RequestID != "req-restart-1" || spans[0].Service != "checkout" {
		t.Errorf("exported spans: got %+v, want the checkout span of req-restart-1", spans)
	}
	for _, name := range []string{"pilothouse_loki_forwarded_records_total", "pilothouse_trace_forward_spans_total"} {
		if n, err := testutil.GatherAndCount(srv.metrics, name); err != nil || n != 1 {
			t.Errorf("%s: got %d series (%v), want 1", name, n, err)
		}
	}
}

func TestEnginesRejectBadURL(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "loki", cfg: Config{LokiURL: "loki:3100"}},
		{name: "otlp", cfg: Config{OTLPForwardURL: "ftp://collector"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.DataDir = t.TempDir()
			tt.cfg.AdminPassword = testAdminPassword
			tt.cfg.Auth = auth.Config{BcryptCost: bcrypt.MinCost}
			if srv, err := New(tt.cfg); err == nil {
				stop(t, srv)
				t.Errorf("New: got nil error, want one")
			}
		})
	}
}
