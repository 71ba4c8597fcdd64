package api

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// TestStoreErrors: a store that fails answers 503 with Retry-After and is
// logged; a query cut short because the client hung up is neither.
func TestStoreErrors(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	mux := http.NewServeMux()
	New(st, nil, nil, slog.New(slog.NewTextHandler(&logs, nil))).Register(mux)

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/logs?request_id=r-1", nil).WithContext(gone))
	if w.Code == http.StatusServiceUnavailable || logs.Len() > 0 {
		t.Errorf("client gone: got %d and log %q, want no 503 and no error logged", w.Code, logs.String())
	}

	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/logs?request_id=r-1", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("closed store: got %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if !bytes.Contains(logs.Bytes(), []byte("api: store query failed")) {
		t.Errorf("closed store: log %q, want the failure logged", logs.String())
	}
}
