package faults_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/demo"
	"github.com/pilothouse/pilothouse/controlplane/server"
)

// controlPlaneDelay is how long the slow control plane sits on every
// request before answering.
const controlPlaneDelay = 3 * time.Second

// TestControlPlaneSlow puts a control plane that answers every request
// seconds late at the agents' address: exports, heartbeats and policy
// polls all crawl, and the shop's requests are as fast as before.
func TestControlPlaneSlow(t *testing.T) {
	dir := t.TempDir()
	d := startDemo(t, dir, demo.Options{})
	base := runLoad(d.GatewayURL(), loadRate, 4*time.Second)
	t.Logf("baseline: %v", base)

	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := d.StopControlPlane(sctx)
	cancel()
	if err != nil {
		t.Fatalf("StopControlPlane: %v", err)
	}
	srv, err := server.New(server.Config{DataDir: dir, Auth: fastAuth})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", strings.TrimPrefix(d.URL, "http://"))
	if err != nil {
		t.Fatalf("listen on the control plane's address: %v", err)
	}
	var hits atomic.Int64
	slow := &http.Server{Handler: delayed(srv.Handler(), controlPlaneDelay, &hits), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- slow.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = slow.Close() // held long-polls and delayed answers need not finish
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("slow control plane: %v", err)
		}
		_ = srv.Shutdown(ctx)
	})

	// Long enough for several heartbeats, exports and polls to hang.
	fault := runLoad(d.GatewayURL(), loadRate, 8*time.Second)
	t.Logf("with a slow control plane: %v", fault)
	if fault.failed != 0 {
		t.Errorf("failed requests with a slow control plane: got %d, want 0 (%v)", fault.failed, fault)
	}
	checkLatency(t, base, fault, loadSlack)
	if hits.Load() == 0 {
		t.Errorf("requests from the agents to the slow control plane: got 0, want some")
	}
}

// delayed answers every request after d (or when the client gives up),
// counting them in hits.
func delayed(next http.Handler, d time.Duration, hits *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
		next.ServeHTTP(w, r)
	})
}
