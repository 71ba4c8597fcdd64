package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/server"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/examples/shop/services"
)

// startDemo runs a quiet demo on free loopback ports with its own store.
func startDemo(t *testing.T) *Demo {
	t.Helper()
	d, err := Start(Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Rate: -1, ErrorRate: -1, Heartbeat: 200 * time.Millisecond,
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

// viewerToken returns an API token for reading the demo's API.
func viewerToken(t *testing.T, d *Demo) string {
	t.Helper()
	secret, _, err := d.Server().Auth().CreateToken(context.Background(), auth.NewToken{Kind: auth.KindAPI, Name: "demo-test", Role: auth.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	return secret
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

// eventually polls cond until it holds or the deadline passes. Export is
// batched off the request path, so data arrives a moment after the request.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %s", what, within, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/orders: got %d, want 201", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Request-ID"); got != requestID {
		t.Errorf("response X-Request-ID: got %q, want %q", got, requestID)
	}

	var traceID string
	eventually(t, 20*time.Second, "trace found by request ID", func() (bool, string) {
		var body struct{ Traces []store.TraceSummary }
		getJSON(t, tok, d.URL+"/api/v1/traces?request_id="+url.QueryEscape(requestID), &body)
		if len(body.Traces) != 1 {
			return false, fmt.Sprintf("%d traces", len(body.Traces))
		}
		traceID = body.Traces[0].TraceID
		return len(body.Traces[0].Services) == 4, fmt.Sprintf("services %v", body.Traces[0].Services)
	})

	want := []string{services.Gateway, services.Orders, services.Payments, services.Inventory}
	eventually(t, 20*time.Second, "spans from all four services", func() (bool, string) {
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

	eventually(t, 20*time.Second, "log lines from all four services", func() (bool, string) {
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

	eventually(t, 10*time.Second, "every service reports heartbeats", func() (bool, string) {
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
