package services

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/server"
	"github.com/pilothouse/pilothouse/controlplane/server/servertest"
)

// TestShopAsSeparateServices: the four services started as their
// binaries start them (run, the agent configured from PILOTHOUSE_URL and
// PILOTHOUSE_TOKEN, peers from the SHOP_*_URL variables, no Consul) serve
// an order, and the control plane has its trace from all four services
// and log lines from each, found by the request ID.
func TestShopAsSeparateServices(t *testing.T) {
	const token = "shop-process-test-token"
	cpURL, srv := servertest.Start(t, server.Config{AgentToken: token})
	t.Setenv(wire.EnvURL, cpURL)
	t.Setenv(wire.EnvToken, token)
	viewer := servertest.Token(t, srv, auth.RoleViewer)

	env := map[string]string{}
	for _, name := range []string{Inventory, Payments, Orders} {
		p := startShopService(t, name, nil, env)
		env[map[string]string{Orders: EnvOrdersURL, Payments: EnvPaymentsURL, Inventory: EnvInventoryURL}[name]] = "http://" + p.addr
	}
	gateway := startShopService(t, Gateway, nil, env)

	const requestID = "shop-as-processes-1"
	req, _ := http.NewRequest(http.MethodPost, "http://"+gateway.addr+"/api/orders", strings.NewReader(`{"sku":"sku-3","quantity":1,"amount":5}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(wire.HeaderRequestID, requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/orders: got %d, want 201", resp.StatusCode)
	}

	api := func(path string, out any) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodGet, cpURL+path, nil)
		r.Header.Set("Authorization", "Bearer "+viewer)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	all := []string{Gateway, Orders, Payments, Inventory}
	await.Until(t, 20*time.Second, "one trace from the four services", func() (bool, string) {
		var body struct{ Traces []struct{ Services []string } }
		api("/api/v1/traces?request_id="+requestID, &body)
		if len(body.Traces) != 1 {
			return false, fmt.Sprintf("%d traces", len(body.Traces))
		}
		return len(body.Traces[0].Services) == len(all), fmt.Sprintf("services %v", body.Traces[0].Services)
	})
	await.Until(t, 20*time.Second, "log lines from each service", func() (bool, string) {
		var body struct{ Logs []struct{ Service string } }
		api("/api/v1/logs?request_id="+requestID, &body)
		seen := map[string]bool{}
		for _, l := range body.Logs {
			seen[l.Service] = true
		}
		for _, s := range all {
			if !seen[s] {
				return false, fmt.Sprintf("logs from %v", seen)
			}
		}
		return true, ""
	})
}
