package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/server"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/examples/shop/services"
)

// startDemo runs a quiet demo on free loopback ports with its own store.
func startDemo(t *testing.T) *Demo {
	t.Helper()
	return startDemoIn(t, t.TempDir())
}

func startDemoIn(t *testing.T, dir string) *Demo {
	t.Helper()
	d, err := Start(Options{Addr: "127.0.0.1:0", DataDir: dir, Rate: -1, ErrorRate: -1, Heartbeat: 200 * time.Millisecond,
		Server: server.Config{Auth: auth.Config{BcryptCost: bcrypt.MinCost}}})
	if err != nil {
		t.Fatalf("start demo: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("close demo: %v", err)
		}
	})
	return d
}

// viewerToken returns the API token the demo prints for its JSON API.
func viewerToken(t *testing.T, d *Demo) string {
	t.Helper()
	if d.APIToken == "" {
		t.Fatal("the demo made no API token")
	}
	return d.APIToken
}

// TestAPITokenOfEachRun: each start prints a viewer token that reads the
// API and cannot write, and revokes the one the previous start printed.
func TestAPITokenOfEachRun(t *testing.T) {
	dir := t.TempDir()
	first := startDemoIn(t, dir)
	old := first.APIToken
	status := func(d *Demo, method, path, token string) int {
		req, _ := http.NewRequest(method, d.URL+path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(first, http.MethodGet, "/api/v1/services", old); got != http.StatusOK {
		t.Fatalf("GET /api/v1/services with the printed token: got %d, want 200", got)
	}
	if got := status(first, http.MethodPut, "/api/v1/policies/orders", old); got != http.StatusForbidden {
		t.Errorf("PUT a policy with the viewer token: got %d, want 403", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	second := startDemoIn(t, dir)
	if second.APIToken == old {
		t.Fatal("the second start printed the first start's token")
	}
	if got := status(second, http.MethodGet, "/api/v1/services", old); got != http.StatusUnauthorized {
		t.Errorf("the first start's token after a restart: got %d, want 401", got)
	}
	if got := status(second, http.MethodGet, "/api/v1/services", second.APIToken); got != http.StatusOK {
		t.Errorf("the second start's token: got %d, want 200", got)
	}
}

func getJSON(t *testing.T, token, rawURL string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: decode: %v", rawURL, err)
	}
	return resp.StatusCode
}

// TestOneRequestAcrossTheShop is the foundation's end-to-end promise: one
// request through the gateway becomes one trace with spans from all four
// services and log lines from each, all found by its request ID.
func TestOneRequestAcrossTheShop(t *testing.T) {
	d := startDemo(t)
	tok := viewerToken(t, d)
	const requestID = "it-order-placement-1"

	req, _ := http.NewRequest(http.MethodPost, d.GatewayURL()+"/api/orders", strings.NewReader(`{"sku":"sku-7","quantity":2,"amount":19.99}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-ID", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /api/orders: %v", err)
	}
	var order struct{ ID int64 }
	_ = json.NewDecoder(resp.Body).Decode(&order)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || order.ID == 0 {
		t.Fatalf("POST /api/orders: got %d with order %d, want 201 and an order ID", resp.StatusCode, order.ID)
	}
	if got := resp.Header.Get("X-Request-ID"); got != requestID {
		t.Errorf("response X-Request-ID: got %q, want %q", got, requestID)
	}

	var traceID string
	await.Until(t, 20*time.Second, "trace found by request ID", func() (bool, string) {
		var body struct{ Traces []store.TraceSummary }
		getJSON(t, tok, d.URL+"/api/v1/traces?request_id="+url.QueryEscape(requestID), &body)
		if len(body.Traces) != 1 {
			return false, fmt.Sprintf("%d traces", len(body.Traces))
		}
		traceID = body.Traces[0].TraceID
		return len(body.Traces[0].Services) == 4, fmt.Sprintf("services %v", body.Traces[0].Services)
	})

	// The orders span names the SKU: a search by that attribute finds the
	// trace, and one by a SKU nobody ordered finds nothing.
	var bySKU struct{ Traces []store.TraceSummary }
	getJSON(t, tok, d.URL+"/api/v1/traces?since=5m&limit=1000&attr="+url.QueryEscape("order.sku=sku-7"), &bySKU)
	if !slices.ContainsFunc(bySKU.Traces, func(s store.TraceSummary) bool { return s.TraceID == traceID }) {
		t.Errorf("traces with order.sku=sku-7: %d found, not %s", len(bySKU.Traces), traceID)
	}
	getJSON(t, tok, d.URL+"/api/v1/traces?attr="+url.QueryEscape("order.sku=sku-nobody-ordered"), &bySKU)
	if len(bySKU.Traces) != 0 {
		t.Errorf("traces with order.sku=sku-nobody-ordered: got %d, want none", len(bySKU.Traces))
	}

	want := []string{services.Gateway, services.Orders, services.Payments, services.Inventory}
	await.Until(t, 20*time.Second, "spans from all four services", func() (bool, string) {
		var body struct{ Spans []store.Span }
		getJSON(t, tok, d.URL+"/api/v1/traces/"+traceID, &body)
		seen := map[string]bool{}
		for _, s := range body.Spans {
			if s.TraceID != traceID {
				t.Fatalf("span %s has trace %s, want %s", s.SpanID, s.TraceID, traceID)
			}
			if s.Kind == "server" {
				seen[s.Service] = true
				if s.RequestID != requestID {
					t.Errorf("server span of %s: request_id %q, want %q", s.Service, s.RequestID, requestID)
				}
			}
		}
		for _, w := range want {
			if !seen[w] {
				return false, fmt.Sprintf("server spans from %v", seen)
			}
		}
		return true, ""
	})

	await.Until(t, 20*time.Second, "log lines from all four services", func() (bool, string) {
		var body struct{ Logs []store.LogRecord }
		getJSON(t, tok, d.URL+"/api/v1/logs?request_id="+url.QueryEscape(requestID), &body)
		seen := map[string]bool{}
		for _, l := range body.Logs {
			if l.RequestID != requestID {
				t.Fatalf("log line %q has request_id %q", l.Body, l.RequestID)
			}
			if l.TraceID != traceID {
				t.Errorf("log line %q of %s: trace_id %q, want %q", l.Body, l.Service, l.TraceID, traceID)
			}
			seen[l.Service] = true
		}
		for _, w := range want {
			if !seen[w] {
				return false, fmt.Sprintf("logs from %v", seen)
			}
		}
		return true, ""
	})

	// Every log line that names the order, whichever request logged it.
	var byOrder struct{ Logs []store.LogRecord }
	getJSON(t, tok, d.URL+"/api/v1/logs?attr="+url.QueryEscape(fmt.Sprintf("order_id=%d", order.ID)), &byOrder)
	from := map[string]bool{}
	for _, l := range byOrder.Logs {
		from[l.Service] = true
	}
	if !from[services.Gateway] || !from[services.Orders] {
		t.Errorf("log lines with order_id=%d: from %v, want gateway's and orders'", order.ID, from)
	}

	await.Until(t, 10*time.Second, "every service reports heartbeats", func() (bool, string) {
		var body struct {
			Services []struct {
				Name      string
				Health    string
				Instances []json.RawMessage
			}
		}
		getJSON(t, tok, d.URL+"/api/v1/services", &body)
		healthy := map[string]bool{}
		for _, s := range body.Services {
			healthy[s.Name] = s.Health == "healthy" && len(s.Instances) == 1
		}
		for _, w := range want {
			if !healthy[w] {
				return false, fmt.Sprintf("%+v", body.Services)
			}
		}
		return true, ""
	})
}

// TestDegradeThroughTheAPI is the policy promise over loopback: an
// operator degrades the orders service's GET /reports/daily through the
// API; the gateway's next requests get the fallback, the orders span and
// log line name the rule and the action, and every orders instance reports
// the new version. With the control plane stopped, the shop keeps serving
// and keeps enforcing.
func TestDegradeThroughTheAPI(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	operator, _, err := d.Server().Auth().CreateToken(ctx, auth.NewToken{Kind: auth.KindAPI, Name: "policy-it", Role: auth.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	const fallback = `{"orders":0,"revenue":0,"degraded":true}`
	pol := wire.Policy{Service: services.Orders, Version: 0, Degradations: []wire.DegradationRule{{
		RuleMeta: wire.RuleMeta{ID: "daily-report-off", Description: "the daily report is slow; serve an empty one"},
		Match:    wire.Match{Route: "/reports/daily", Method: http.MethodGet},
		Enabled:  true,
		Fallback: wire.Response{Status: http.StatusOK, ContentType: "application/json", Body: fallback},
	}}}
	body, _ := json.Marshal(pol)
	req, _ := http.NewRequest(http.MethodPut, d.URL+"/api/v1/policies/"+services.Orders+"?reason=integration+test", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+operator)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT policy: %v", err)
	}
	var stored wire.Policy
	_ = json.NewDecoder(resp.Body).Decode(&stored)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || stored.Version < 1 {
		t.Fatalf("PUT policy: got %d version %d, want 200 and a new version", resp.StatusCode, stored.Version)
	}

	// The gateway answers orders' fallback.
	var requestID string
	await.Until(t, 15*time.Second, "the gateway answers the fallback", func() (bool, string) {
		requestID = fmt.Sprintf("it-degrade-%d", time.Now().UnixNano())
		code, got := gatewayGet(t, d, "/api/reports/daily", requestID)
		return code == http.StatusOK && sameJSON(got, fallback), fmt.Sprintf("%d %s", code, got)
	})

	tok := viewerToken(t, d)
	await.Until(t, 20*time.Second, "the orders span names the rule", func() (bool, string) {
		var traces struct{ Traces []store.TraceSummary }
		getJSON(t, tok, d.URL+"/api/v1/traces?request_id="+url.QueryEscape(requestID), &traces)
		if len(traces.Traces) != 1 {
			return false, fmt.Sprintf("%d traces", len(traces.Traces))
		}
		var spans struct{ Spans []store.Span }
		getJSON(t, tok, d.URL+"/api/v1/traces/"+traces.Traces[0].TraceID, &spans)
		for _, s := range spans.Spans {
			if s.Service == services.Orders && s.Kind == "server" {
				rule, act := s.Attributes[wire.AttrRuleID], s.Attributes[wire.AttrAction]
				return rule == "daily-report-off" && act == wire.ActionDegraded, fmt.Sprintf("orders span attributes %v", s.Attributes)
			}
		}
		return false, fmt.Sprintf("no orders server span among %d", len(spans.Spans))
	})
	await.Until(t, 20*time.Second, "the orders log line names the rule", func() (bool, string) {
		var logs struct{ Logs []store.LogRecord }
		getJSON(t, tok, d.URL+"/api/v1/logs?request_id="+url.QueryEscape(requestID), &logs)
		for _, l := range logs.Logs {
			if l.Service == services.Orders && l.Attributes["rule_id"] == "daily-report-off" && l.Attributes["action"] == wire.ActionDegraded {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d log lines: %+v", len(logs.Logs), logs.Logs)
	})
	await.Until(t, 10*time.Second, "every orders instance reports the version", func() (bool, string) {
		var body struct {
			Services []struct {
				Name      string
				Instances []struct {
					ID            string `json:"id"`
					PolicyVersion int64  `json:"policy_version"`
					PolicyError   string `json:"policy_error"`
				}
			}
		}
		getJSON(t, tok, d.URL+"/api/v1/services", &body)
		for _, s := range body.Services {
			if s.Name != services.Orders {
				continue
			}
			for _, in := range s.Instances {
				if in.PolicyVersion != stored.Version || in.PolicyError != "" {
					return false, fmt.Sprintf("%+v", s.Instances)
				}
			}
			return len(s.Instances) > 0, "no instances"
		}
		return false, "no orders service"
	})

	// Without the control plane the shop serves and enforces. Shutdown
	// closes the listener at once; it then waits for open requests, and
	// the agents' policy long-polls stay open until their wait ends, so
	// it is given a short grace period.
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := d.Server().Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop the control plane: %v", err)
	}
	if resp, err := http.Get(d.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("control plane after shutdown: got %s, want no answer", resp.Status)
	}
	for i := range 5 {
		if code, got := gatewayGet(t, d, "/api/reports/daily", fmt.Sprintf("it-cp-down-%d", i)); code != http.StatusOK || !sameJSON(got, fallback) {
			t.Fatalf("report %d with the control plane down: got %d %s, want the fallback", i, code, got)
		}
		if code, _ := gatewayGet(t, d, "/api/orders/7", fmt.Sprintf("it-cp-down-order-%d", i)); code != http.StatusOK {
			t.Fatalf("order %d with the control plane down: got %d, want 200", i, code)
		}
		time.Sleep(300 * time.Millisecond) // let heartbeats and polls fail in between
	}
}

// sameJSON reports whether a and b hold the same JSON value (the gateway
// re-encodes what orders answers).
func sameJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

// gatewayGet calls the shop's gateway and returns the status and body.
func gatewayGet(t *testing.T, d *Demo, path, requestID string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.GatewayURL()+path, nil)
	req.Header.Set("X-Request-ID", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}
