package faults_test

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/server"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

var errNoSpace = errors.New("no space left on device")

// TestStoreWriteFailure makes every store write fail as a full disk
// would: ingest answers 503 with Retry-After, the control plane keeps
// serving, the overview says why, and all is well again once writes
// succeed.
func TestStoreWriteFailure(t *testing.T) {
	var failing atomic.Bool
	srv, url := startServer(t, server.Config{DataDir: t.TempDir(), Store: store.Options{WriteFault: func() error {
		if failing.Load() {
			return errNoSpace
		}
		return nil
	}}})
	viewer := apiToken(t, srv.Auth(), auth.RoleViewer)
	now := time.Now()

	steps := []struct {
		name       string
		failing    bool
		wantStatus int
		wantAlert  bool
	}{
		{name: "healthy", wantStatus: http.StatusOK},
		{name: "disk full", failing: true, wantStatus: http.StatusServiceUnavailable, wantAlert: true},
		{name: "space freed", wantStatus: http.StatusOK},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			failing.Store(st.failing)
			tid := traceIDBytes(7, uint64(i))
			for _, req := range []struct{ path, body string }{
				{wire.PathTraces, string(otlpTrace(t, "checkout", tid, uint64(i), 3, "rq", now))},
				{wire.PathLogs, string(otlpLogs(t, "checkout", 2, "rq", now))},
			} {
				code, h, body := call(t, http.MethodPost, url+req.path, "", protobufType, []byte(req.body))
				if code != st.wantStatus {
					t.Errorf("POST %s: got %d %q, want %d", req.path, code, body, st.wantStatus)
				}
				if st.failing && h.Get("Retry-After") == "" {
					t.Errorf("POST %s: got no Retry-After, want one", req.path)
				}
			}

			var health struct {
				OK bool `json:"ok"`
			}
			if code := getJSON(t, "", url+"/healthz", &health); code != http.StatusOK || !health.OK {
				t.Errorf("healthz: got %d %+v, want 200 ok", code, health)
			}
			code, _, page := call(t, http.MethodGet, url+"/", viewer, "", nil)
			if code != http.StatusOK {
				t.Fatalf("overview: got %d, want 200", code)
			}
			doc, err := goquery.NewDocumentFromReader(strings.NewReader(string(page)))
			if err != nil {
				t.Fatalf("overview: %v", err)
			}
			alert := doc.Find(`[data-testid="alert"]`).Text()
			if got := alert != ""; got != st.wantAlert {
				t.Errorf("overview alert %q: got shown %v, want %v", alert, got, st.wantAlert)
			}
			if st.wantAlert && !strings.Contains(alert, errNoSpace.Error()) {
				t.Errorf("overview alert: got %q, want it to say %q", alert, errNoSpace)
			}
		})
	}
	stats := srv.Store().Stats()
	if stats.Spans != 6 || stats.Logs != 4 {
		t.Errorf("stored: got %d spans and %d logs, want 6 and 4 (the healthy steps only)", stats.Spans, stats.Logs)
	}
}
