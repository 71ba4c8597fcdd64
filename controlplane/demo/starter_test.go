package demo

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/policy"
	"github.com/pilothouse/pilothouse/controlplane/server"
	"github.com/pilothouse/pilothouse/examples/shop/services"
)

// TestStarterPolicies checks the demo command's first run: the starter
// policies are stored and audited as "demo", the shop answers as before
// (the degradation is off, the rate limit only shadows), and a restart on
// the same data keeps the operator's later change instead of storing the
// starter again.
func TestStarterPolicies(t *testing.T) {
	dir := t.TempDir()
	start := func() *Demo {
		t.Helper()
		d, err := Start(Options{Addr: "127.0.0.1:0", DataDir: dir, Rate: -1, ErrorRate: -1, Heartbeat: 200 * time.Millisecond,
			StarterPolicies: true, Server: server.Config{Auth: auth.Config{BcryptCost: bcrypt.MinCost}}})
		if err != nil {
			t.Fatalf("start demo: %v", err)
		}
		return d
	}
	stop := func(d *Demo) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("close demo: %v", err)
		}
	}
	ctx := context.Background()

	d := start()
	for _, p := range starterPolicies() {
		if got := d.Server().Policies().Current(p.Service); got.Version != 1 {
			t.Errorf("%s policy: got version %d, want the starter as version 1", p.Service, got.Version)
		}
	}
	events, err := d.Server().Audit().List(ctx, audit.Filter{Actor: starterActor, Action: audit.ActionPolicyUpdate})
	if err != nil || len(events) != len(starterPolicies()) || events[0].Diff == "" {
		t.Errorf("audit: got %d events by %q (err %v), want one per starter policy with its diff", len(events), starterActor, err)
	}
	for i := range 10 { // more than the shadow limit's 3/s: it marks, never refuses
		resp, err := http.Get(d.GatewayURL() + "/api/orders/" + strconv.Itoa(i%9+1))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("order lookup %d: got %d, want 200 (the starter rate limit is shadow only)", i, resp.StatusCode)
		}
	}

	changed := d.Server().Policies().Current(services.Orders)
	changed.Degradations[0].Enabled = true
	if _, err := d.Server().Policies().Put(ctx, changed, 1, policy.Author{Actor: "tester"}); err != nil {
		t.Fatalf("switch the degradation on: %v", err)
	}
	stop(d)

	d = start()
	defer stop(d)
	got := d.Server().Policies().Current(services.Orders)
	if got.Version != 2 || !got.Degradations[0].Enabled {
		t.Errorf("orders policy after a restart: got version %d (enabled %v), want the operator's version 2", got.Version, got.Degradations[0].Enabled)
	}
	if n, _ := d.Server().Audit().List(ctx, audit.Filter{Actor: starterActor, Action: audit.ActionPolicyUpdate}); len(n) != len(starterPolicies()) {
		t.Errorf("audit after a restart: got %d starter events, want %d (nothing stored again)", len(n), len(starterPolicies()))
	}
}
