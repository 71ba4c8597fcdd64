package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/demo"
	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/examples/shop/services"
)

// Load used by the latency comparisons: enough requests for a p99, few
// enough for two shared cores.
const (
	loadRate  = 40 // requests per second
	loadSlack = 100 * time.Millisecond
	resumeBy  = 10 * time.Second // the promise: agents are back within this of a restart
)

var shopServices = []string{services.Gateway, services.Orders, services.Payments, services.Inventory}

// TestControlPlaneRestart stops the control plane under steady load on the
// gateway and starts it again on the same address and data: no request
// fails, p99 stays near the baseline, and within 10 s of the restart the
// agents beat again, export spans of new requests and take a new policy.
func TestControlPlaneRestart(t *testing.T) {
	d := startDemo(t, t.TempDir(), demo.Options{})
	viewer := apiToken(t, d.Server().Auth(), auth.RoleViewer)
	operator := apiToken(t, d.Server().Auth(), auth.RoleOperator)
	waitServices(t, d.URL, viewer, 10*time.Second)

	base := runLoad(d.GatewayURL(), loadRate, 4*time.Second)
	t.Logf("baseline: %v", base)

	ctx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan loadResult, 1)
	go func() { loadDone <- steadyLoad(ctx, d.GatewayURL(), loadRate) }()
	time.Sleep(time.Second)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	stopStart := time.Now()
	err := d.StopControlPlane(sctx)
	cancel()
	if err != nil {
		t.Fatalf("StopControlPlane: %v", err)
	}
	t.Logf("control plane stopped in %v", time.Since(stopStart))
	time.Sleep(3 * time.Second) // agents find it gone: exports, heartbeats and long-polls fail
	if err := d.StartControlPlane(); err != nil {
		t.Fatalf("StartControlPlane: %v", err)
	}
	restarted := time.Now()

	// Heartbeats: the registry lives in memory, so every service it
	// lists after the restart has beaten since.
	waitServices(t, d.URL, viewer, resumeBy)
	t.Logf("heartbeats back %v after the restart", time.Since(restarted))

	// Export: a request made now is traced and queryable.
	reqID := fmt.Sprintf("after-restart-%d", time.Now().UnixNano())
	req, _ := http.NewRequest(http.MethodGet, d.GatewayURL()+"/api/orders/7", nil)
	req.Header.Set("X-Request-ID", reqID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	resp.Body.Close()
	await.Until(t, resumeBy-time.Since(restarted), "spans of a request made after the restart", func() (bool, string) {
		var out struct {
			Traces []struct {
				SpanCount int `json:"span_count"`
			} `json:"traces"`
		}
		getJSON(t, viewer, d.URL+"/api/v1/traces?request_id="+reqID, &out)
		return len(out.Traces) == 1 && out.Traces[0].SpanCount >= 4, fmt.Sprintf("%+v", out.Traces)
	})
	t.Logf("export back %v after the restart", time.Since(restarted))

	// Policy: a version written now reaches the orders agent.
	body := fmt.Sprintf(`{"service":"orders","version":%d,"degradations":[{"id":"restart-probe","match":{"route":"/reports/daily"},"enabled":false,"fallback":{"status":200,"body":"{}"}}]}`,
		d.Server().Policies().Current("orders").Version)
	code, _, out := call(t, http.MethodPut, d.URL+"/api/v1/policies/orders", operator, "application/json", []byte(body))
	if code != http.StatusOK {
		t.Fatalf("PUT policy: got %d %s, want 200", code, out)
	}
	want := d.Server().Policies().Current("orders").Version
	await.Until(t, resumeBy-time.Since(restarted), "orders agent applies the new policy", func() (bool, string) {
		svc, ok := d.Server().Registry().Service("orders", time.Now())
		return ok && allOnVersion(svc, want), fmt.Sprintf("want version %d, instances %+v", want, svc.Instances)
	})
	t.Logf("policy back %v after the restart", time.Since(restarted))

	time.Sleep(time.Second)
	stopLoad()
	fault := <-loadDone
	t.Logf("with the fault: %v", fault)
	if fault.failed != 0 {
		t.Errorf("failed requests with the control plane restarting: got %d, want 0 (%v)", fault.failed, fault)
	}
	checkLatency(t, base, fault, loadSlack)
}

func allOnVersion(svc registry.Service, v int64) bool {
	if len(svc.Instances) == 0 {
		return false
	}
	for _, in := range svc.Instances {
		if in.PolicyVersion != v {
			return false
		}
	}
	return true
}

// waitServices waits until the registry lists every shop service.
func waitServices(t *testing.T, base, token string, within time.Duration) {
	t.Helper()
	await.Until(t, within, "every shop service beating", func() (bool, string) {
		var out struct {
			Services []struct {
				Name string `json:"name"`
			} `json:"services"`
		}
		getJSON(t, token, base+"/api/v1/services", &out)
		seen := map[string]bool{}
		for _, s := range out.Services {
			seen[s.Name] = true
		}
		for _, name := range shopServices {
			if !seen[name] {
				return false, fmt.Sprintf("have %v", out.Services)
			}
		}
		return true, ""
	})
}
