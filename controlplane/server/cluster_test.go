package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/consulreg"
	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/consul"
	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
	"github.com/pilothouse/pilothouse/controlplane/policy"
)

// servicesHealth reads GET /api/v1/services as service -> instance ID ->
// health.
func servicesHealth(t *testing.T, url, token string) map[string]map[string]string {
	t.Helper()
	code, body := get(t, url+"/api/v1/services", token)
	if code != 200 {
		t.Fatalf("GET /api/v1/services: got %d %s, want 200", code, body)
	}
	var resp struct {
		Services []struct {
			Name      string `json:"name"`
			Instances []struct {
				ID     string `json:"id"`
				Health string `json:"health"`
			} `json:"instances"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("decode services: %v", err)
	}
	out := map[string]map[string]string{}
	for _, s := range resp.Services {
		out[s.Name] = map[string]string{}
		for _, in := range s.Instances {
			out[s.Name][in.ID] = in.Health
		}
	}
	return out
}

// register registers an instance in Consul through the agent's consulreg
// with a TTL check that health feeds, and deregisters it when the test
// ends.
func register(t *testing.T, consulAddr string, cfg consulreg.Config) {
	t.Helper()
	cfg.ConsulAddress = consulAddr
	cfg.Address = "127.0.0.1"
	cfg.TTL = 5 * time.Second
	reg, err := consulreg.Register(context.Background(), cfg)
	if err != nil {
		t.Fatalf("register %s: %v", cfg.ID, err)
	}
	t.Cleanup(func() { reg.Close() })
}

// TestCatalogInstancesMerged: with Config.Consul, an instance registered
// in Consul (no heartbeats) is listed by /api/v1/services and on the
// dashboard's service page with Consul's health, and a heartbeat
// instance Consul calls critical shows down.
func TestCatalogInstancesMerged(t *testing.T) {
	c := consultest.Start(t)
	url, srv := startReplica(t, c.Addr)
	viewer := apiToken(t, srv, auth.RoleViewer)

	if code := post(t, url+"/api/v1/agents/heartbeat", "", heartbeatOrders); code != 200 {
		t.Fatalf("heartbeat: got %d, want 200", code)
	}
	register(t, c.Addr, consulreg.Config{Service: "inventory", ID: "inventory-consul-1", Port: 9301,
		Meta: map[string]string{consul.MetaInstance: "inventory-7f3", consul.MetaVersion: "v3"}})
	register(t, c.Addr, consulreg.Config{Service: "orders", ID: "orders-consul-1", Port: 9302,
		Meta:   map[string]string{consul.MetaInstance: "orders-1"},
		Health: func() error { return errors.New("database unreachable") }})

	consulClient := c.Client(t)
	await.Until(t, 30*time.Second, "catalog instances in /api/v1/services", func() (bool, string) {
		got := servicesHealth(t, url, viewer)
		if got["inventory"]["inventory-7f3"] == "healthy" && got["orders"]["orders-1"] == "down" {
			return true, ""
		}
		// Say what Consul itself reports, to tell a slow Consul from a stale mirror.
		var checks []string
		for _, name := range []string{"inventory", "orders"} {
			entries, _, err := consulClient.Health().Service(name, "", false, nil)
			if err != nil {
				checks = append(checks, name+": "+err.Error())
			}
			for _, e := range entries {
				for _, chk := range e.Checks {
					checks = append(checks, fmt.Sprintf("%s/%s %s %q", name, chk.Name, chk.Status, chk.Output))
				}
			}
		}
		return false, fmt.Sprintf("API %v; Consul %v", got, checks)
	})

	// Routing follows the merged view: the heartbeat instance Consul calls
	// critical is no target, the Consul-only one is.
	beat := strings.Replace(heartbeatOrders, `"interval"`, `"address":"127.0.0.1:9302","interval"`, 1)
	await.Until(t, 5*time.Second, "heartbeat reply endpoints", func() (bool, string) {
		resp, err := http.Post(url+"/api/v1/agents/heartbeat", "application/json", strings.NewReader(beat))
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var reply wire.HeartbeatReply
		if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
			return false, err.Error()
		}
		inv := reply.Endpoints["inventory"]
		ok := len(reply.Endpoints["orders"]) == 0 && len(inv) == 1 && inv[0].Instance == "inventory-7f3" && strings.HasSuffix(inv[0].Address, ":9301")
		return ok, fmt.Sprintf("%+v", reply.Endpoints)
	})

	code, page := get(t, url+"/services/inventory", viewer)
	if code != 200 || !strings.Contains(page, `data-instance="inventory-7f3"`) {
		t.Errorf("service page of inventory: got %d, want 200 listing instance inventory-7f3", code)
	}
	code, page = get(t, url+"/", viewer)
	if code != 200 || !strings.Contains(page, "/services/inventory") {
		t.Errorf("overview: got %d, want 200 linking the Consul-only service inventory", code)
	}
}

// TestWithoutConsulHeartbeatsOnly: without Consul the API lists the
// heartbeat registry as before, and the process is the leader.
func TestWithoutConsulHeartbeatsOnly(t *testing.T) {
	url, srv := start(t, t.TempDir(), "")
	defer stop(t, srv)
	if code := post(t, url+"/api/v1/agents/heartbeat", "", heartbeatOrders); code != 200 {
		t.Fatalf("heartbeat: got %d, want 200", code)
	}
	viewer := apiToken(t, srv, auth.RoleViewer)
	got := servicesHealth(t, url, viewer)
	if len(got) != 1 || len(got["orders"]) != 1 {
		t.Errorf("services: got %v, want only orders with orders-1", got)
	}
	if !leaderOf(t, url, viewer) {
		t.Error("leader: got false, want true (one process runs every job)")
	}
}

// leaderOf reads the leader flag of /healthz and the pilothouse_leader
// gauge of /metrics; it fails the test when they disagree.
func leaderOf(t *testing.T, url, viewer string) bool {
	t.Helper()
	code, body := get(t, url+"/healthz", "")
	var health struct {
		Leader bool `json:"leader"`
	}
	if err := json.Unmarshal([]byte(body), &health); code != 200 || err != nil {
		t.Fatalf("healthz: got %d %s", code, body)
	}
	code, metrics := get(t, url+"/metrics", viewer)
	want := "pilothouse_leader 0"
	if health.Leader {
		want = "pilothouse_leader 1"
	}
	if code != 200 || !strings.Contains(metrics, want+"\n") {
		t.Fatalf("metrics: got %d, want a line %q (healthz leader %v)", code, want, health.Leader)
	}
	return health.Leader
}

// TestOneLeaderCompactsPolicyHistory: of two replicas on one Consul
// exactly one leads; when it stops the other takes over, and as leader
// trims the shared policy history to Config.PolicyHistory versions.
func TestOneLeaderCompactsPolicyHistory(t *testing.T) {
	c := consultest.Start(t)
	const keep = 3
	urlA, srvA := startReplicaWith(t, Config{Consul: c.Addr, PolicyHistory: keep})
	urlB, srvB := startReplicaWith(t, Config{Consul: c.Addr, PolicyHistory: keep})
	viewerA, viewerB := apiToken(t, srvA, auth.RoleViewer), apiToken(t, srvB, auth.RoleViewer)

	var leader, follower *Server
	var followerURL, followerViewer string
	await.Until(t, 20*time.Second, "exactly one leader", func() (bool, string) {
		a, b := leaderOf(t, urlA, viewerA), leaderOf(t, urlB, viewerB)
		switch {
		case a && !b:
			leader, follower, followerURL, followerViewer = srvA, srvB, urlB, viewerB
		case b && !a:
			leader, follower, followerURL, followerViewer = srvB, srvA, urlA, viewerA
		default:
			return false, fmt.Sprintf("A leads %v, B leads %v", a, b)
		}
		return true, ""
	})

	// Writes on the follower land in the shared history; compaction runs
	// when a replica becomes the leader (and every CompactEvery).
	ctx := context.Background()
	by := policy.Author{Actor: "alice", Reason: "test"}
	for v := range int64(keep + 3) {
		p := wire.Policy{Service: "orders", Degradations: []wire.DegradationRule{{RuleMeta: wire.RuleMeta{ID: "reports-off"},
			Match: wire.Match{Route: "/reports/daily"}, Enabled: v%2 == 0, Fallback: wire.Response{Status: 503}}}}
		if _, err := follower.Policies().Put(ctx, p, v, by); err != nil {
			t.Fatalf("put version %d: %v", v+1, err)
		}
	}
	stop(t, leader)
	await.Until(t, 20*time.Second, "the follower takes over", func() (bool, string) {
		return leaderOf(t, followerURL, followerViewer), "not leading"
	})
	await.Until(t, 20*time.Second, "history compacted", func() (bool, string) {
		hist, err := follower.Policies().History(ctx, "orders", 0)
		if err != nil {
			return false, err.Error()
		}
		return len(hist) == keep && hist[0].Version == keep+3, fmt.Sprintf("%d versions, newest %d", len(hist), hist[0].Version)
	})
	if got := follower.Policies().Current("orders").Version; got != keep+3 {
		t.Errorf("head: got version %d, want %d", got, keep+3)
	}
}
