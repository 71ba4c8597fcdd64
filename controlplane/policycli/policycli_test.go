package policycli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/policy"
	"github.com/pilothouse/pilothouse/controlplane/policyapi"
)

const rulesYAML = `service: orders
degradations:
  - id: reports-off
    description: switch the daily report off during the sale
    match: {route: /reports/daily, method: GET}
    enabled: true
    fallback: {status: 200, content_type: application/json, body: '{"orders":0}'}
rate_limits:
  - id: lookups
    match: {route: /orders/:id}
    rate: 50
    burst: 20
    key: client_ip
breakers:
  - id: payments
    target: payments
    threshold: 0.5
    window: 10s
    open_for: 5s
`

func startControlPlane(t *testing.T) string {
	t.Helper()
	st, err := policy.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mux := http.NewServeMux()
	policyapi.New(policyapi.Config{Store: st}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestApplyDiffGet(t *testing.T) {
	url := startControlPlane(t)
	file := filepath.Join(t.TempDir(), "orders.yaml")
	if err := os.WriteFile(file, []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "diff", "-f", file, "--url", url)
	if err != nil || !strings.Contains(out, `+      "id": "reports-off"`) {
		t.Fatalf("diff before apply: err %v, output:\n%s", err, out)
	}
	out, err = run(t, "apply", "-f", file, "--url", url, "--reason", "sale")
	if err != nil || !strings.Contains(out, "version 1") {
		t.Fatalf("apply: err %v, output %q", err, out)
	}
	out, err = run(t, "diff", "-f", file, "--url", url)
	if err != nil || out != "no changes\n" {
		t.Fatalf("diff after apply: err %v, output %q", err, out)
	}
	out, err = run(t, "get", "orders", "--url", url)
	if err != nil || !strings.Contains(out, "version: 1") || !strings.Contains(out, "route: /reports/daily") {
		t.Fatalf("get: err %v, output:\n%s", err, out)
	}
	// The YAML printed by get applies again as the next version.
	if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "apply", "-f", file, "--url", url); err != nil || !strings.Contains(out, "version 2") {
		t.Fatalf("re-apply: err %v, output %q", err, out)
	}
	// A file based on an old version conflicts.
	if _, err := run(t, "apply", "-f", file, "--url", url, "--base", "1"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("stale apply: got %v, want a 409 conflict", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		doc       string
		wantField string
	}{
		{name: "unknown key", doc: "service: a\nratelimits: []\n", wantField: "ratelimits"},
		{name: "invalid rule", doc: "service: a\ntimeouts:\n  - id: t\n    target: b\n", wantField: "timeouts[0].timeout"},
		{name: "not a mapping", doc: "- a\n- b\n", wantField: ""},
		{name: "bad yaml", doc: "service: [a\n", wantField: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			es, ok := wire.AsFieldErrors(err)
			if !ok {
				t.Fatalf("got %v, want field errors", err)
			}
			if es[0].Field != tt.wantField {
				t.Errorf("got field %q, want %q (%v)", es[0].Field, tt.wantField, es)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(rulesYAML))
	f.Add([]byte("service: a\nroutes:\n  - id: r\n    target: b\n    subsets: [{name: s, weight: 1}]\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if _, ok := wire.AsFieldErrors(err); !ok && !errors.Is(err, wire.ErrTooLarge) {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted an invalid policy: %v", err)
		}
	})
}
