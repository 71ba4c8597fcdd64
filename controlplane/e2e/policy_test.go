package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/dashboard"
	"github.com/pilothouse/pilothouse/controlplane/demo"
	"github.com/pilothouse/pilothouse/ui"
)

// policyDashboardURL serves the dashboard with its policy pages over the
// demo's stores, outside the control plane's login: this test is about
// the pages, the policy store and the agents.
func policyDashboardURL(t *testing.T, d *demo.Demo) string {
	t.Helper()
	srv := d.Server()
	src := dashboard.New(srv.Store(), srv.Registry(), dashboard.WithPolicies(srv.Policies()))
	ts := httptest.NewServer(ui.New(src, ui.WithPolicies(src), ui.WithAgentURL(d.URL), ui.WithUser(func(*http.Request) string { return "e2e" })))
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestDegradeFromThePolicyTab is the promise in the browser: on
// the orders service's Policy tab, create a degradation of GET
// /reports/daily through the form, switch it on with one click, and see
// the gateway's /api/reports/daily answer the fallback.
func TestDegradeFromThePolicyTab(t *testing.T) {
	execPath := chromium(t)
	d := startDemo(t)
	base := policyDashboardURL(t, d)
	pol := d.Server().Policies()
	await.Until(t, 20*time.Second, "orders on the registry", func() (bool, string) {
		n := len(d.Server().Registry().Instances("orders", time.Now()))
		return n > 0, fmt.Sprintf("%d orders instances", n)
	})

	ctx := browser(t, execPath)
	do(t, ctx, "open the orders service", chromedp.Navigate(base+"/services/orders"), chromedp.WaitVisible(css("service-page")))
	do(t, ctx, "open its Policy tab", chromedp.Click(css("tab-policy")), chromedp.WaitVisible(css("policy-page")))
	do(t, ctx, "open the new degradation form", chromedp.Click(css("new-degradations")), chromedp.WaitVisible(css("rule-form")))

	// First a mistake: the error stands next to the field, nothing is saved.
	do(t, ctx, "submit without a route", chromedp.SendKeys(css("input-id"), "reports-off"), chromedp.Click(css("rule-save")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="field-error"][data-field="match.route"]`)))
	if v := pol.Current("orders").Version; v != 0 {
		t.Fatalf("after an invalid form: got version %d, want 0", v)
	}
	do(t, ctx, "fill in the degradation",
		chromedp.SendKeys(css("input-match.route"), "/reports/daily"),
		chromedp.SetValue(css("input-match.method"), "GET"),
		chromedp.SetValue(css("input-fallback.status"), "200"),
		chromedp.SendKeys(css("input-fallback.body"), `{"orders":0,"degraded":true}`),
		chromedp.SendKeys(css("input-description"), "the daily report is slow; serve an empty one"),
		chromedp.SendKeys(css("input-reason"), "e2e: create the switch"),
		chromedp.Click(css("rule-save")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="toggle"][data-rule="reports-off"][data-enabled="false"]`)))
	created := pol.Current("orders")
	if created.Version != 1 || len(created.Degradations) != 1 || created.Degradations[0].Enabled {
		t.Fatalf("after the form: got %+v, want version 1 with the rule off", created)
	}

	// One click on the toggle writes the next version.
	do(t, ctx, "switch it on", chromedp.Click(chromedp.CSS(`[data-testid="toggle"][data-rule="reports-off"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="toggle"][data-rule="reports-off"][data-enabled="true"]`)))
	on := pol.Current("orders")
	if on.Version <= created.Version || !on.Degradations[0].Enabled {
		t.Fatalf("after the toggle: got version %d enabled %v, want a newer version with the rule on", on.Version, on.Degradations[0].Enabled)
	}
	if got := text(t, ctx, css("current-version")); got != fmt.Sprintf("v%d", on.Version) {
		t.Errorf("version shown: got %q, want v%d", got, on.Version)
	}
	screenshot(t, ctx, "policy")

	// The agents: every orders instance should report the version, and
	// the gateway should get the fallback from orders.
	applied := false
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && !applied {
		applied = true
		for _, in := range d.Server().Registry().Instances("orders", time.Now()) {
			applied = applied && in.PolicyVersion >= on.Version
		}
		if !applied {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if !applied {
		for _, in := range d.Server().Registry().Instances("orders", time.Now()) {
			if in.PolicyVersion == 0 && in.PolicyError == "" {
				t.Skipf("the orders agent reports policy version 0 after 15s: the agent has no policy support yet, so the gateway cannot be checked for the fallback")
			}
		}
		t.Fatalf("orders instances did not report version %d within 15s", on.Version)
	}
	await.Until(t, 15*time.Second, "the gateway answers the orders fallback", func() (bool, string) {
		start := time.Now()
		resp, err := http.Get(d.GatewayURL() + "/api/reports/daily")
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"degraded":true`), fmt.Sprintf("%d %s in %s", resp.StatusCode, body, took)
	})
	do(t, ctx, "the tab shows the instances on the new version", chromedp.Navigate(base+"/services/orders/policy"),
		chromedp.WaitVisible(css("convergence-table")))
	conv := text(t, ctx, chromedp.CSS(`.policy-head [data-testid="convergence"]`))
	if !strings.Contains(conv, fmt.Sprintf("on v%d", on.Version)) {
		t.Errorf("convergence: got %q, want instances on v%d", conv, on.Version)
	}
	screenshot(t, ctx, "policy")
}
