package e2e

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/dashboard"
	"github.com/pilothouse/pilothouse/controlplane/demo"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/ui"
)

var updateScreenshots = flag.Bool("screenshots", false, "rewrite docs/screenshots/{overview,trace,logs}.png for the README")

// Where the files go, relative to this package.
const (
	artifactsDir   = "../../test-artifacts"
	screenshotsDir = "../../docs/screenshots"
	chromiumEnv    = "PILOTHOUSE_CHROMIUM"
)

// chromium finds the browser; without one the test fails under CI=true
// and is skipped otherwise.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv(chromiumEnv), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium not found (set %s or install Debian's chromium); CI=true requires the browser tests", chromiumEnv)
	}
	t.Skip("chromium not found; install it or set " + chromiumEnv)
	return ""
}

// browser starts a fresh headless Chromium and returns a tab context.
func browser(t *testing.T, execPath string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	return ctx
}

// startDemo runs the demo with traffic and failures, on free ports.
func startDemo(t *testing.T) *demo.Demo {
	t.Helper()
	d, err := demo.Start(demo.Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Rate: 6, ErrorRate: 0.1, Heartbeat: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("start demo: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Logf("close demo: %v", err)
		}
	})
	return d
}

// dashboardURL is the demo's own dashboard when the control plane mounts
// it, else the same dashboard served over the demo's store and registry.
func dashboardURL(t *testing.T, d *demo.Demo) string {
	t.Helper()
	resp, err := http.Get(d.URL + "/")
	if err == nil {
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 64<<10)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		// With access control on, "/" redirects to the login form.
		if strings.Contains(b.String(), `data-testid="header"`) || strings.Contains(b.String(), `data-testid="login-form"`) {
			return d.URL
		}
	}
	srv := d.Server()
	h := ui.New(dashboard.New(srv.Store(), srv.Registry()), ui.WithAgentURL(d.URL))
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	t.Logf("the control plane does not serve the dashboard yet; serving it at %s", ts.URL)
	return ts.URL
}

// signIn logs the browser in as the demo's admin when base is the demo's
// own control plane (which requires a session).
func signIn(t *testing.T, ctx context.Context, d *demo.Demo, base string) {
	t.Helper()
	if base != d.URL || d.AdminPassword == "" {
		return
	}
	do(t, ctx, "sign in", chromedp.Navigate(base+"/login"), chromedp.WaitVisible(css("login-form")),
		chromedp.SendKeys(css("login-username"), d.AdminUser), chromedp.SendKeys(css("login-password"), d.AdminPassword),
		chromedp.Submit(css("login-password")), chromedp.WaitVisible(css("header")))
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{artifactsDir}
	if *updateScreenshots && (name == "overview" || name == "trace" || name == "logs") {
		dirs = append(dirs, screenshotsDir)
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func css(testid string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + testid + `"]`) }

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// void runs a that returns a value as a step of do.
func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := a(ctx, t)
		return err
	})
}

func text(t *testing.T, ctx context.Context, sel chromedp.CSS) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// TestFollowAFailingRequest is the promise: from the overview,
// click through to a failing request's trace, see the waterfall, follow
// "logs of this request" and find the same request ID on every line; and
// a request ID pasted into the header search box lands on its trace.
func TestFollowAFailingRequest(t *testing.T) {
	execPath := chromium(t)
	d := startDemo(t)
	base := dashboardURL(t, d)
	st := d.Server().Store()

	// A request of our own, to find by its ID through the search box.
	const requestID = "e2e-checkout-0001"
	req, _ := http.NewRequest(http.MethodPost, d.GatewayURL()+"/api/orders", strings.NewReader(`{"sku":"sku-7","quantity":2,"amount":19.99}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-ID", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /api/orders: %v", err)
	}
	resp.Body.Close()

	await.Until(t, 30*time.Second, "a failed request and ours in the store", func() (bool, string) {
		failed, err := st.Traces(context.Background(), store.TraceFilter{Service: "gateway", Status: "error", Limit: 1})
		if err != nil {
			return false, err.Error()
		}
		ours, err := st.Traces(context.Background(), store.TraceFilter{RequestID: requestID, Limit: 1})
		if err != nil {
			return false, err.Error()
		}
		return len(failed) > 0 && len(ours) > 0 && len(ours[0].Services) == 4, fmt.Sprintf("%d failed, ours %v", len(failed), ours)
	})
	await.Until(t, 20*time.Second, "services on the overview", func() (bool, string) {
		n := len(d.Server().Registry().Services(time.Now()))
		return n == 4, fmt.Sprintf("%d services", n)
	})

	if *updateScreenshots {
		// Let the sparklines of the README's overview show a few buckets.
		time.Sleep(70 * time.Second)
	}
	ctx := browser(t, execPath)
	signIn(t, ctx, d, base)

	// Overview -> gateway.
	do(t, ctx, "open the overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("services-table")))
	if n, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(`[data-testid="service-row"]`))); err != nil || len(n) != 4 {
		t.Fatalf("service rows: got %d (%v), want 4", len(n), err)
	}
	screenshot(t, ctx, "overview")
	do(t, ctx, "open the gateway", chromedp.Click(chromedp.CSS(`[data-service="gateway"] [data-testid="service-link"]`)), chromedp.WaitVisible(css("service-page")))
	screenshot(t, ctx, "service")

	// Gateway -> its most recent failed request -> waterfall.
	do(t, ctx, "open a failed trace", chromedp.WaitVisible(css("recent-errors")),
		chromedp.Click(chromedp.CSS(`[data-testid="recent-errors"] [data-testid="trace-link"]`)), chromedp.WaitVisible(css("waterfall")))
	if n, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(`[data-testid="span-error"]`))); err != nil || len(n) == 0 {
		t.Errorf("failed trace: got %d spans marked as errors (%v), want some", len(n), err)
	}
	failedRequest := text(t, ctx, css("trace-request-id"))
	do(t, ctx, "open a span's details", chromedp.Click(chromedp.CSS(`[data-testid="span"] > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="span"][open] [data-testid="span-detail"]`)))
	screenshot(t, ctx, "trace")

	// Logs of this request: every line carries its request ID.
	do(t, ctx, "follow logs of this request", chromedp.Click(css("trace-logs-link")), chromedp.WaitVisible(css("log-line")))
	ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('[data-testid="log-request-id"]')).map(e => e.textContent.trim())`))
	if err != nil || len(ids) == 0 {
		t.Fatalf("log request IDs: got %v (%v), want at least one", ids, err)
	}
	for _, id := range ids {
		if id != failedRequest {
			t.Errorf("log line of request %q, want %q", id, failedRequest)
		}
	}
	screenshot(t, ctx, "logs")

	// The header search box: a pasted request ID goes to its trace.
	do(t, ctx, "search our request ID", chromedp.Navigate(base+"/map"), chromedp.WaitVisible(css("search-input")), chromedp.SendKeys(css("search-input"), requestID), chromedp.Submit(css("search-input")),
		chromedp.WaitVisible(css("waterfall")))
	if got := text(t, ctx, css("trace-request-id")); got != requestID {
		t.Errorf("searched trace: got request ID %q, want %q", got, requestID)
	}
	chips, err := chromedp.Run(ctx, chromedp.Evaluate[int](`new Set(Array.from(document.querySelectorAll('[data-testid="span"]')).map(e => e.dataset.service)).size`))
	if err != nil || chips != 4 {
		t.Errorf("services in our trace: got %d (%v), want 4", chips, err)
	}

	// Trace search and the service map render in the browser too.
	do(t, ctx, "open trace search", chromedp.Navigate(base+"/traces?status=error"), chromedp.WaitVisible(css("traces-table")))
	if v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.htmx ? htmx.version : "missing"`)); err != nil || v != "2.0.11" {
		t.Errorf("htmx under the CSP: got %q (%v), want 2.0.11", v, err)
	}
	// The filter form swaps the results in place and pushes the URL. Every
	// error trace passes through orders (the gateway calls only orders), so
	// the filtered list is never empty; payments may have had no error yet.
	do(t, ctx, "filter traces by service", chromedp.SendKeys(css("filter-service"), "orders"), chromedp.Click(css("traces-submit")),
		void(chromedp.Poll[bool](`location.search.includes("service=orders")`, chromedp.WithPollingTimeout(10*time.Second))),
		chromedp.WaitVisible(css("traces-table")))
	if bad, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Array.from(document.querySelectorAll('[data-testid="trace-row"]')).filter(r => !r.textContent.includes("orders")).length`)); err != nil || bad != 0 {
		t.Errorf("filtered traces: got %d rows without orders (%v), want 0", bad, err)
	}
	screenshot(t, ctx, "traces")
	do(t, ctx, "open the map", chromedp.Navigate(base+"/map"), chromedp.WaitVisible(css("map-svg")))
	screenshot(t, ctx, "map")
}

// TestLiveTail opens the logs page and waits for the live tail (SSE) to
// prepend a line the traffic generator caused after the page loaded; then
// pauses it.
func TestLiveTail(t *testing.T) {
	execPath := chromium(t)
	d := startDemo(t)
	base := dashboardURL(t, d)
	await.Until(t, 30*time.Second, "logs in the store", func() (bool, string) {
		logs, err := d.Server().Store().Logs(context.Background(), store.LogFilter{Limit: 1})
		return err == nil && len(logs) > 0, fmt.Sprint(err)
	})
	ctx := browser(t, execPath)
	signIn(t, ctx, d, base)
	do(t, ctx, "open logs", chromedp.Navigate(base+"/logs"), chromedp.WaitVisible(css("tail-live")), chromedp.WaitVisible(css("log-line")))
	first, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="log-line"]').dataset.seq`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`Number(document.querySelector('[data-testid="log-line"]').dataset.seq) > `+first, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("no new line arrived over the live tail after seq %s: %v", first, err)
	}
	dups, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(() => { const s = Array.from(document.querySelectorAll('[data-testid="log-line"]')).map(e => e.dataset.seq); return s.length - new Set(s).size })()`))
	if err != nil || dups != 0 {
		t.Errorf("live tail repeated lines: got %d duplicates (%v), want 0", dups, err)
	}
	do(t, ctx, "pause the tail", chromedp.Click(css("tail-pause")), chromedp.WaitVisible(css("tail-resume")))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.Contains(loc, "live=0") {
		t.Errorf("paused URL: got %q (%v), want live=0", loc, err)
	}
}
