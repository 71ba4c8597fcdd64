package ui

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/pilothouse/pilothouse/agent/wire"
)

func newPolicyHandler(f *fakePolicies, opts ...Option) *Handler {
	return newTestHandler(newFakeSource(), append([]Option{WithPolicies(f), WithUser(func(*http.Request) string { return "carol" })}, opts...)...)
}

// post submits a form like a browser, or like htmx when htmx is true.
func post(t *testing.T, h http.Handler, target string, form url.Values, htmx bool) response {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "192.0.2.7:5555"
	if htmx {
		req.Header.Set("HX-Request", "true")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse %s: %v", target, err)
	}
	return response{code: rec.Code, header: rec.Header(), body: rec.Body.String(), doc: doc}
}

func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestPolicyPagesRender(t *testing.T) {
	h := newPolicyHandler(newFakePolicies())
	tests := []struct {
		name     string
		target   string
		wantCode int
		want     map[string]int // data-testid -> exact count
	}{
		{"policies", "/policies", 200, map[string]int{"policies-table": 1, "policy-row": 2, "convergence": 2, "nav-policies": 1}},
		{"policy tab", "/services/orders/policy", 200, map[string]int{"policy-page": 1, "tab-policy": 1, "rule-row": 5, "toggle": 1, "rule-edit": 5, "rule-delete": 5,
			"counter": 4, "convergence-row": 2, "breaker-event": 2, "breaker-state": 1, "history-row": 3, "rollback-form": 2, "current-marker": 1, "policy-marker": 3,
			"activity-row": 5, "new-rate_limits": 1, "new-routes": 1, "rule-shadow": 1}},
		{"policy tab of a service without policy", "/services/gateway/policy", 200, map[string]int{"history-empty": 1, "empty-degradations": 1, "convergence-row": 1}},
		{"status fragment", "/services/orders/policy/status", 200, map[string]int{"policy-status": 1, "convergence-row": 2}},
		{"service page has tabs and markers", "/services/orders", 200, map[string]int{"tab-policy": 1, "policy-marker": 3}},
		{"new rate limit", "/services/orders/policy/new/rate_limits", 200, map[string]int{"rule-form": 1, "input-rate": 1, "input-key": 1, "input-response.body": 1, "field-error": 0}},
		{"new routing rule", "/services/orders/policy/new/routes", 200, map[string]int{"input-subsets[0].weight": 1, "input-subsets[1].weight": 1, "input-overrides[0].subset": 1}},
		{"edit breaker", "/services/orders/policy/breakers/payments-breaker", 200, map[string]int{"rule-form": 1, "input-threshold": 1, "input-open_for": 1}},
		{"edit routing rule", "/services/orders/policy/routes/payments-canary", 200, map[string]int{"input-subsets[2].name": 1, "input-overrides[1].subset": 1}},
		{"unknown kind", "/services/orders/policy/new/quotas", 404, map[string]int{"error-page": 1}},
		{"unknown rule", "/services/orders/policy/breakers/nope", 404, map[string]int{"error-page": 1}},
		{"bad history", "/services/orders/policy?history=0", 400, map[string]int{"error-page": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, h, tt.target)
			if r.code != tt.wantCode {
				t.Fatalf("GET %s: got status %d, want %d", tt.target, r.code, tt.wantCode)
			}
			for id, n := range tt.want {
				if got := r.doc.Find(testid(id)).Length(); got != n {
					t.Errorf("%s: got %d elements, want %d", id, got, n)
				}
			}
		})
	}
}

func TestPolicyFigures(t *testing.T) {
	h := newPolicyHandler(newFakePolicies())
	r := get(t, h, "/policies")
	row := r.doc.Find(`[data-testid="policy-row"][data-service="orders"]`)
	if got, want := squash(row.Find(testid("convergence")).Text()), "1/2 instances on v3; 1 rejected v3: breakers[0].threshold: "+xssPayload; got != want {
		t.Errorf("convergence: got %q, want %q", got, want)
	}
	if got := squash(row.Find(testid("rule-counts")).Text()); !strings.Contains(got, "1 Rate limits") || !strings.Contains(got, "1 Timeouts") {
		t.Errorf("rule counts: got %q, want each kind counted", got)
	}
	if got := squash(r.doc.Find(`[data-service="gateway"] [data-testid="convergence"]`).Text()); got != "no policy stored" {
		t.Errorf("gateway convergence: got %q, want %q", got, "no policy stored")
	}

	r = get(t, h, "/services/orders/policy")
	if got := r.doc.Find(`[data-rule="orders-per-client"] [data-action="limited"]`).First().Text(); squash(got) != "limited 17" {
		t.Errorf("limited counter: got %q, want %q", got, "limited 17")
	}
	if got := squash(r.doc.Find(`[data-instance="orders-1"] [data-testid="instance-policy-status"]`).Text()); !strings.HasPrefix(got, "rejected v3: breakers[0].threshold") {
		t.Errorf("rejecting instance: got %q, want the rejection", got)
	}
	if got := squash(r.doc.Find(`[data-instance="orders-0"] [data-testid="instance-policy-status"]`).Text()); got != "current" {
		t.Errorf("converged instance: got %q, want current", got)
	}
	if got := r.doc.Find(testid("breaker-event")).First().Find(testid("breaker-reason")).Text(); got != "open for 30s" {
		t.Errorf("newest breaker event: got reason %q, want %q", got, "open for 30s")
	}
	marker := r.doc.Find(`[data-testid="policy-marker"] title`).Last().Text()
	if !strings.HasPrefix(marker, "v3 by alice: reports back") {
		t.Errorf("newest marker: got title %q, want version and reason", marker)
	}
	if got := r.doc.Find(`[data-testid="history-row"][data-version="2"] [data-testid="history-reason"]`).Text(); got != "reports too slow "+xssPayload {
		t.Errorf("history reason: got %q", got)
	}
	if got := r.doc.Find(`[data-version="3"] .diff-add`).Length(); got == 0 {
		t.Errorf("diff of v3: got no added lines, want some")
	}
}

func TestPoliciesOffWithoutSource(t *testing.T) {
	h := newTestHandler(newFakeSource())
	if r := get(t, h, "/policies"); r.code != http.StatusNotFound {
		t.Errorf("/policies: got %d, want 404", r.code)
	}
	r := get(t, h, "/services/orders")
	for _, id := range []string{"nav-policies", "tab-policy"} {
		if n := r.doc.Find(testid(id)).Length(); n != 0 {
			t.Errorf("%s: got %d, want 0 without WithPolicies", id, n)
		}
	}
}

func TestToggleDegradation(t *testing.T) {
	tests := []struct {
		name     string
		htmx     bool
		base     string
		wantCode int
		wantOn   bool
	}{
		{"browser", false, "3", http.StatusSeeOther, true},
		{"htmx", true, "3", http.StatusOK, true},
		{"browser, stale version", false, "2", http.StatusConflict, false},
		{"htmx, stale version", true, "2", http.StatusConflict, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePolicies()
			h := newPolicyHandler(f)
			r := post(t, h, "/services/orders/policy/degradations/reports-off/toggle", url.Values{"base": {tt.base}, "enabled": {"true"}}, tt.htmx)
			if r.code != tt.wantCode {
				t.Fatalf("got status %d, want %d: %s", r.code, tt.wantCode, r.body)
			}
			if got := f.current("orders").Degradations[0].Enabled; got != tt.wantOn {
				t.Errorf("enabled: got %v, want %v", got, tt.wantOn)
			}
			hasLayout := r.doc.Find(testid("header")).Length() == 1
			switch {
			case tt.wantCode == http.StatusSeeOther:
				if loc := r.header.Get("Location"); loc != "/services/orders/policy?saved=4" {
					t.Errorf("Location: got %q, want the policy tab with the saved version", loc)
				}
				if f.lastAuthor.Actor != "carol" || f.lastAuthor.Remote != "192.0.2.7:5555" || f.lastAuthor.Reason != "turn degradation reports-off on" {
					t.Errorf("author: got %+v, want carol from 192.0.2.7:5555 with a reason", f.lastAuthor)
				}
			case tt.wantCode == http.StatusOK:
				if hasLayout {
					t.Errorf("htmx answer: got the whole page, want the tab fragment")
				}
				if got := r.doc.Find(testid("toggle")).AttrOr("data-enabled", ""); got != "true" {
					t.Errorf("toggle after the change: got data-enabled=%q, want true", got)
				}
				if got := r.doc.Find(testid("flash")).Text(); got != "Saved version 4." {
					t.Errorf("flash: got %q, want %q", got, "Saved version 4.")
				}
				if got := r.doc.Find(`[data-testid="toggle-form"] input[name="base"]`).AttrOr("value", ""); got != "4" {
					t.Errorf("next toggle's base: got %q, want 4", got)
				}
			default:
				if hasLayout == tt.htmx {
					t.Errorf("layout: got %v, want %v", hasLayout, !tt.htmx)
				}
				got := squash(r.doc.Find(testid("conflict")).Text())
				if !strings.Contains(got, "Changed by alice meanwhile") || !strings.Contains(got, "Reload") {
					t.Errorf("conflict: got %q, want who changed it and a reload link", got)
				}
			}
		})
	}
}

func TestRuleFormErrorsStandNextToFields(t *testing.T) {
	tests := []struct {
		name   string
		target string
		form   url.Values
		want   map[string]string // field -> error message prefix
	}{
		{"rate limit", "/services/orders/policy/rate_limits", url.Values{"id": {""}, "rate": {"abc"}, "match.route": {"orders"}, "key": {"cookie"}, "response.status": {"99"}},
			map[string]string{"id": "is required", "rate": "must be a number", "match.route": "must be a route template", "key": "must be global", "response.status": "must be an HTTP status"}},
		{"breaker", "/services/orders/policy/breakers", url.Values{"id": {"b2"}, "threshold": {"2"}, "open_for": {"soon"}, "error_statuses": {"5xx, 6xx"}},
			map[string]string{"target": "a breaker needs a match", "threshold": "must be a ratio", "open_for": "must be a duration", "error_statuses": "must be a status"}},
		{"duplicate id", "/services/orders/policy/timeouts", url.Values{"id": {"reports-off"}, "target": {"payments"}, "timeout": {"2h"}},
			map[string]string{"id": "duplicate of degradations[0].id", "timeout": "must be above 0 and at most 1h"}},
		{"routing", "/services/orders/policy/routes", url.Values{"id": {"r2"}, "target": {"payments"}, "subsets[0].name": {"a"}, "subsets[0].weight": {"0"},
			"subsets[3].name": {"b"}, "subsets[3].weight": {"x"}, "overrides[0].header.name": {"X-A"}, "overrides[0].subset": {"zz"}},
			map[string]string{"subsets[1].weight": "must be a whole number", "overrides[0].subset": `no subset named "zz"`}},
		{"degradation without route", "/services/orders/policy/degradations/reports-off", url.Values{"id": {"reports-off"}, "fallback.status": {"503"}},
			map[string]string{"match.route": "a degradation needs a route"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePolicies()
			h := newPolicyHandler(f)
			tt.form.Set("base", "3")
			r := post(t, h, tt.target, tt.form, false)
			if r.code != http.StatusUnprocessableEntity {
				t.Fatalf("got status %d, want 422: %s", r.code, r.body)
			}
			if v := f.current("orders").Version; v != 3 {
				t.Errorf("version: got %d, want 3 (nothing saved)", v)
			}
			for field, want := range tt.want {
				label := r.doc.Find(`label.field:has([name="` + field + `"])`)
				if label.Length() != 1 {
					t.Errorf("field %s: got %d inputs, want 1", field, label.Length())
					continue
				}
				got := label.Find(testid("field-error")).Text()
				if !strings.HasPrefix(got, want) {
					t.Errorf("error next to %s: got %q, want %q", field, got, want)
				}
			}
			// What was typed is shown again.
			for field, vs := range tt.form {
				if field == "base" || strings.HasPrefix(field, "subsets[3]") {
					continue
				}
				in := r.doc.Find(`[name="` + field + `"]`)
				if got := in.AttrOr("value", in.Text()); got != vs[0] {
					t.Errorf("input %s: got %q, want %q kept", field, got, vs[0])
				}
			}
		})
	}
}

func TestRoutingErrorOnGroup(t *testing.T) {
	h := newPolicyHandler(newFakePolicies())
	r := post(t, h, "/services/orders/policy/routes", url.Values{"base": {"3"}, "id": {"r2"}, "target": {"payments"}, "subsets[0].name": {"a"}, "subsets[0].weight": {"0"}}, true)
	if r.code != http.StatusUnprocessableEntity {
		t.Fatalf("got status %d, want 422", r.code)
	}
	if r.doc.Find(testid("header")).Length() != 0 {
		t.Errorf("htmx answer: got the whole page, want the form fragment")
	}
	if got := r.doc.Find(`[data-testid="field-error"][data-field="subsets"]`).Text(); got != "weights must not all be 0" {
		t.Errorf("subsets error: got %q, want it on the subsets group", got)
	}
}

func TestRuleChangesAreSaved(t *testing.T) {
	tests := []struct {
		name   string
		target string
		form   url.Values
		check  func(t *testing.T, p wire.Policy)
	}{
		{"create rate limit", "/services/orders/policy/rate_limits", url.Values{"id": {"rl2"}, "match.route": {"/orders"}, "match.method": {"post"}, "rate": {"2.5"}, "burst": {"5"}, "key": {"header:X-Api-Key"}, "scope": {"cluster"}},
			func(t *testing.T, p wire.Policy) {
				got := p.RateLimits[1]
				if got.ID != "rl2" || got.Rate != 2.5 || got.Burst != 5 || got.Match.Method != "POST" || got.Key != "header:X-Api-Key" || got.Scope != "cluster" || got.Response != nil {
					t.Errorf("rate limit: got %+v", got)
				}
			}},
		{"edit breaker into an inbound one", "/services/orders/policy/breakers/payments-breaker", url.Values{"id": {"payments-breaker"}, "match.route": {"/orders"}, "strategy": {"consecutive_errors"}, "threshold": {"5"}, "fallback.status": {"502"}, "fallback.body": {"a\r\nb"}},
			func(t *testing.T, p wire.Policy) {
				got := p.Breakers[0]
				if got.Target != "" || got.Match == nil || got.Match.Route != "/orders" || got.Threshold != 5 || got.Fallback == nil || got.Fallback.Body != "a\nb" {
					t.Errorf("breaker: got %+v", got)
				}
			}},
		{"create degradation", "/services/orders/policy/degradations", url.Values{"id": {"stock-off"}, "match.route": {"/stock/:sku"}, "enabled": {"on"}, "fallback.status": {"200"}, "fallback.body": {"{}"}},
			func(t *testing.T, p wire.Policy) {
				got := p.Degradations[1]
				if got.ID != "stock-off" || !got.Enabled || got.Fallback.Status != 200 {
					t.Errorf("degradation: got %+v", got)
				}
			}},
		{"edit routing: blank rows dropped", "/services/orders/policy/routes/payments-canary", url.Values{"id": {"payments-canary"}, "target": {"payments"}, "subsets[0].name": {"stable"}, "subsets[0].weight": {"50"},
			"subsets[2].name": {"canary"}, "subsets[2].version": {"v2"}, "subsets[2].weight": {"50"}, "overrides[1].header.name": {"X-Canary"}, "overrides[1].header.value": {"1"}, "overrides[1].subset": {"canary"}},
			func(t *testing.T, p wire.Policy) {
				got := p.Routes[0]
				if len(got.Subsets) != 2 || got.Subsets[1] != (wire.Subset{Name: "canary", Version: "v2", Weight: 50}) || len(got.Overrides) != 1 || got.Overrides[0].Subset != "canary" {
					t.Errorf("routing: got %+v", got)
				}
			}},
		{"rename timeout", "/services/orders/policy/timeouts/inventory-timeout", url.Values{"id": {"inv-timeout"}, "target": {"inventory"}, "timeout": {"1500ms"}, "mode": {"shadow"}},
			func(t *testing.T, p wire.Policy) {
				if len(p.Timeouts) != 1 || p.Timeouts[0].ID != "inv-timeout" || p.Timeouts[0].Timeout.D().Milliseconds() != 1500 {
					t.Errorf("timeouts: got %+v", p.Timeouts)
				}
			}},
		{"delete", "/services/orders/policy/rate_limits/orders-per-client/delete", url.Values{},
			func(t *testing.T, p wire.Policy) {
				if len(p.RateLimits) != 0 || len(p.Degradations) != 1 {
					t.Errorf("after delete: got %d rate limits, %d degradations; want 0, 1", len(p.RateLimits), len(p.Degradations))
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePolicies()
			h := newPolicyHandler(f)
			tt.form.Set("base", "3")
			tt.form.Set("reason", "ticket OPS-1")
			r := post(t, h, tt.target, tt.form, false)
			if r.code != http.StatusSeeOther {
				t.Fatalf("got status %d, want 303: %s", r.code, squash(r.doc.Find(`[data-testid="field-error"], [data-testid="form-error"], [data-testid="error-message"]`).Text()))
			}
			p := f.current("orders")
			if p.Version != 4 {
				t.Errorf("version: got %d, want 4", p.Version)
			}
			if f.lastAuthor.Reason != "ticket OPS-1" || f.lastAuthor.Actor != "carol" {
				t.Errorf("author: got %+v, want carol with the reason", f.lastAuthor)
			}
			tt.check(t, p)
		})
	}
}

func TestRuleFormConflict(t *testing.T) {
	f := newFakePolicies()
	h := newPolicyHandler(f)
	r := post(t, h, "/services/orders/policy/timeouts", url.Values{"base": {"1"}, "id": {"t2"}, "target": {"payments"}, "timeout": {"1s"}}, false)
	if r.code != http.StatusConflict {
		t.Fatalf("got status %d, want 409", r.code)
	}
	if got := squash(r.doc.Find(testid("conflict")).Text()); !strings.HasPrefix(got, "Changed by alice meanwhile (now version 3, you edited version 1)") {
		t.Errorf("conflict: got %q", got)
	}
	if got := r.doc.Find(`[name="id"]`).AttrOr("value", ""); got != "t2" {
		t.Errorf("typed id: got %q, want it kept", got)
	}
}

func TestRollback(t *testing.T) {
	f := newFakePolicies()
	h := newPolicyHandler(f)
	r := post(t, h, "/services/orders/policy/rollback", url.Values{"base": {"3"}, "to": {"2"}}, true)
	if r.code != http.StatusOK {
		t.Fatalf("got status %d, want 200", r.code)
	}
	p := f.current("orders")
	if p.Version != 4 || !p.Degradations[0].Enabled {
		t.Errorf("after rollback to v2: got version %d enabled %v, want 4 true", p.Version, p.Degradations[0].Enabled)
	}
	if got := r.doc.Find(`[data-testid="history-row"][data-version="4"] .badge`).Text(); got != "rollback" {
		t.Errorf("history: got %q, want the rollback marked", got)
	}
	if got := f.lastAuthor.Reason; got != "rollback to version 2" {
		t.Errorf("reason: got %q, want the default", got)
	}
	r = post(t, h, "/services/orders/policy/rollback", url.Values{"base": {"4"}, "to": {"99"}}, false)
	if r.code != http.StatusNotFound {
		t.Errorf("rollback to a missing version: got %d, want 404", r.code)
	}
	r = post(t, h, "/services/orders/policy/rollback", url.Values{"to": {"1"}}, false)
	if r.code != http.StatusBadRequest {
		t.Errorf("rollback without base: got %d, want 400", r.code)
	}
}

func TestDeleteMissingRule(t *testing.T) {
	tests := []struct {
		name     string
		base     string
		wantCode int
	}{
		{"current version", "3", http.StatusNotFound},
		{"older version: maybe deleted meanwhile", "2", http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newPolicyHandler(newFakePolicies())
			r := post(t, h, "/services/orders/policy/breakers/gone/delete", url.Values{"base": {tt.base}}, false)
			if r.code != tt.wantCode {
				t.Errorf("got %d, want %d", r.code, tt.wantCode)
			}
		})
	}
}

func TestCSRFTokenInEveryForm(t *testing.T) {
	const token = `t"ok<en>&'`
	h := newPolicyHandler(newFakePolicies(), WithCSRFToken(func(*http.Request) string { return token }))
	for _, target := range []string{"/services/orders/policy", "/services/orders/policy/new/degradations", "/services/orders/policy/routes/payments-canary"} {
		t.Run(target, func(t *testing.T) {
			r := get(t, h, target)
			forms := r.doc.Find(`form[method="post"]`)
			if forms.Length() == 0 {
				t.Fatal("got no POST forms")
			}
			forms.Each(func(i int, f *goquery.Selection) {
				if got := f.Find(`input[type="hidden"][name="csrf_token"]`).AttrOr("value", ""); got != token {
					t.Errorf("form %d (%s): got csrf_token %q, want %q", i, f.AttrOr("action", ""), got, token)
				}
			})
			var headers map[string]string
			if err := json.Unmarshal([]byte(r.doc.Find("body").AttrOr("hx-headers", "")), &headers); err != nil {
				t.Fatalf("body hx-headers: %v", err)
			}
			if headers["X-CSRF-Token"] != token {
				t.Errorf("hx-headers: got %q, want %q", headers["X-CSRF-Token"], token)
			}
			if strings.Contains(r.body, token) {
				t.Errorf("the raw token appears unescaped in the page")
			}
		})
	}
	r := get(t, newPolicyHandler(newFakePolicies()), "/services/orders/policy")
	if _, ok := r.doc.Find("body").Attr("hx-headers"); ok {
		t.Errorf("hx-headers without a CSRF token: got the attribute, want none")
	}
}

func TestPolicyDataIsEscaped(t *testing.T) {
	f := newFakePolicies()
	h := newPolicyHandler(f)
	for _, target := range []string{"/policies", "/services/orders/policy", "/services/orders/policy/degradations/reports-off", "/services/orders"} {
		t.Run(target, func(t *testing.T) {
			r := get(t, h, target)
			if r.code != http.StatusOK {
				t.Fatalf("got status %d", r.code)
			}
			if strings.Contains(r.body, xssPayload) {
				t.Errorf("raw %q found in the page", xssPayload)
			}
			if r.doc.Find("script:not([src])").Length() != 0 {
				t.Errorf("inline script found")
			}
		})
	}
	// A description shows as text, and the diff shows it escaped as well.
	r := get(t, h, "/services/orders/policy")
	if got := r.doc.Find(`[data-rule="reports-off"] [data-testid="rule-description"]`).Text(); got != "reports are slow: "+xssPayload {
		t.Errorf("description: got %q", got)
	}
	if !strings.Contains(r.doc.Find(".diff").Text(), `reports are slow: \u003cscript\u003e`) {
		t.Errorf("diff: want the JSON-escaped description in the diff text")
	}
}
