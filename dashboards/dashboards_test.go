package dashboards

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/pilothouse/pilothouse/agent"
	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/server"
)

// Fixed UIDs: links, provisioning and the README rely on them.
var wantDashboardUIDs = []string{"pilothouse-controlplane", "pilothouse-policy", "pilothouse-services"}

// query is one PromQL or LogQL expression found in a dashboard.
type query struct {
	where string // dashboard and panel, for messages
	dsUID string
	dsTyp string
	expr  string
}

func TestDashboardsQueryExportedMetrics(t *testing.T) {
	exported := agentMetricNames(t)
	for name := range controlPlaneMetricNames(t) {
		exported[name] = true
	}
	datasources := provisionedDatasources(t)

	files, err := filepath.Glob("*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("dashboards: got %v (%v), want JSON files", files, err)
	}
	var uids []string
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var dash map[string]any
			if err := json.Unmarshal(raw, &dash); err != nil {
				t.Fatalf("parse: %v", err)
			}
			uid, _ := dash["uid"].(string)
			uids = append(uids, uid)
			queries := collectQueries(file, dash, nil, nil)
			if len(queries) == 0 {
				t.Fatalf("got no queries, want some")
			}
			for _, q := range queries {
				typ, ok := datasources[q.dsUID]
				if !ok {
					t.Errorf("%s: data source UID %q: not provisioned", q.where, q.dsUID)
					continue
				}
				if typ != q.dsTyp {
					t.Errorf("%s: data source %q: got type %q, want %q", q.where, q.dsUID, q.dsTyp, typ)
				}
				if typ != "prometheus" {
					continue
				}
				names := MetricNames(q.expr)
				if len(names) == 0 {
					t.Errorf("%s: %q: got no metric names, want at least one", q.where, q.expr)
				}
				for _, n := range names {
					if !exported[n] {
						t.Errorf("%s: metric %q is not exported by the agent or the control plane (expr %q)", q.where, n, q.expr)
					}
				}
			}
		})
	}
	slices.Sort(uids)
	if !slices.Equal(uids, wantDashboardUIDs) {
		t.Errorf("dashboard UIDs: got %v, want %v", uids, wantDashboardUIDs)
	}
}

// collectQueries walks a dashboard for targets and template queries,
// inheriting the panel's data source when a target has none.
func collectQueries(where string, v any, inherited map[string]any, out []query) []query {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = collectQueries(where, e, inherited, out)
		}
	case map[string]any:
		if ds, ok := x["datasource"].(map[string]any); ok {
			inherited = ds
		}
		if title, ok := x["title"].(string); ok {
			where = where + " / " + title
		} else if name, ok := x["name"].(string); ok {
			where = where + " / $" + name
		}
		if expr, ok := x["expr"].(string); ok {
			out = append(out, newQuery(where, inherited, expr))
		}
		if x["type"] == "query" {
			if q, ok := x["query"].(map[string]any); ok {
				if expr, ok := q["query"].(string); ok {
					out = append(out, newQuery(where, inherited, expr))
				}
			}
		}
		for k, e := range x {
			if k != "datasource" {
				out = collectQueries(where, e, inherited, out)
			}
		}
	}
	return out
}

func newQuery(where string, ds map[string]any, expr string) query {
	uid, _ := ds["uid"].(string)
	typ, _ := ds["type"].(string)
	return query{where: where, dsUID: uid, dsTyp: typ, expr: expr}
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`\$?[a-zA-Z_:][a-zA-Z0-9_:]*`)
	labelValuesFn = regexp.MustCompile(`^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
	promKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
)

// MetricNames returns the metric names a PromQL expression (or a Grafana
// label_values(metric, label) template query) selects, in order, without
// duplicates. Function names, keywords, label names and Grafana
// variables are not metric names.
func MetricNames(expr string) []string {
	if m := labelValuesFn.FindStringSubmatch(expr); m != nil {
		expr = m[1]
	}
	expr = promStrings.ReplaceAllString(expr, `""`)
	expr = promMatchers.ReplaceAllString(expr, " ")
	expr = promRanges.ReplaceAllString(expr, " ")
	expr = promGrouping.ReplaceAllString(expr, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(expr, -1) {
		tok := expr[loc[0]:loc[1]]
		if strings.HasPrefix(tok, "$") || promKeywords[strings.ToLower(tok)] {
			continue
		}
		if loc[0] > 0 && (expr[loc[0]-1] >= '0' && expr[loc[0]-1] <= '9' || expr[loc[0]-1] == '.') {
			continue // the exponent or unit of a number
		}
		if rest := strings.TrimLeft(expr[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function
		}
		if !slices.Contains(names, tok) {
			names = append(names, tok)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{name: "rate by", expr: `sum by (service, route) (rate(http_server_request_duration_seconds_count{service=~"$service"}[$__rate_interval]))`,
			want: []string{"http_server_request_duration_seconds_count"}},
		{name: "quantile", expr: `histogram_quantile(0.95, sum by (le) (rate(a_bucket[5m])))`, want: []string{"a_bucket"}},
		{name: "ratio", expr: `sum(rate(x_total{code=~"5.."}[1m])) / sum(rate(y_total[1m])) > bool 0`, want: []string{"x_total", "y_total"}},
		{name: "label value that looks like a metric", expr: `up{job="some_metric"} == 1`, want: []string{"up"}},
		{name: "label_values", expr: `label_values(pilothouse_agent_policy_version{service=~"$s"}, service)`, want: []string{"pilothouse_agent_policy_version"}},
		{name: "on group_left", expr: `a * on (instance) group_left (version) b`, want: []string{"a", "b"}},
		{name: "number with exponent", expr: `c > 1e3`, want: []string{"c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MetricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// provisionedDatasources maps the provisioned data source UIDs to types.
func provisionedDatasources(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("provisioning", "datasources", "pilothouse.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("datasources YAML: %v", err)
	}
	out := map[string]string{}
	for _, ds := range doc.Datasources {
		out[ds.UID] = ds.Type
	}
	return out
}

// metricNamesFrom reads the Prometheus text format: every family name and
// the series names a histogram or summary adds.
func metricNamesFrom(t *testing.T, r io.Reader) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			switch f[3] {
			case "histogram":
				names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
			case "summary":
				names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// agentMetricNames runs a real agent with a rate limit and a breaker,
// sends it traffic that trips both, and scrapes its MetricsHandler.
func agentMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	ag, err := agent.New("shop", agent.WithControlPlane(""), agent.WithLocalLog(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Shutdown(context.Background())
	err = ag.ApplyPolicy(wire.Policy{Service: "shop", Version: 1,
		RateLimits: []wire.RateLimitRule{{RuleMeta: wire.RuleMeta{ID: "limited"}, Match: wire.Match{Route: "/limited"}, Rate: 0.001, Burst: 1}},
		Breakers: []wire.BreakerRule{{RuleMeta: wire.RuleMeta{ID: "fail-breaker"}, Match: &wire.Match{Route: "/fail"},
			Strategy: wire.StrategyConsecutiveErrors, Threshold: 1, MinRequests: 1}},
	})
	if err != nil {
		t.Fatalf("ApplyPolicy: %v", err)
	}
	r := gin.New()
	r.Use(ag.Middleware())
	r.GET("/limited", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.GET("/fail", func(c *gin.Context) { c.String(http.StatusInternalServerError, "boom") })
	for _, path := range []string{"/limited", "/limited", "/fail", "/fail"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	w := httptest.NewRecorder()
	ag.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	names := metricNamesFrom(t, w.Body)
	for _, must := range []string{"http_server_request_duration_seconds", "pilothouse_agent_policy_actions_total", "pilothouse_agent_breaker_state"} {
		if !names[must] {
			t.Fatalf("agent metrics: %s missing after traffic; the test's traffic no longer exercises it", must)
		}
	}
	return names
}

// controlPlaneMetricNames runs a real control plane with Loki and OTLP
// forwarding on (to stubs), ingests a span, and scrapes /metrics.
func controlPlaneMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer stub.Close()
	srv, err := server.New(server.Config{
		DataDir: t.TempDir(), AdminPassword: "admin-password-for-tests", Auth: auth.Config{BcryptCost: bcrypt.MinCost},
		LokiURL: stub.URL, OTLPForwardURL: stub.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	token, _, err := srv.Auth().CreateToken(context.Background(), auth.NewToken{Kind: auth.KindAPI, Name: "prometheus", Role: auth.RoleViewer, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	do := func(method, path, token string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	now := time.Now()
	beat, err := json.Marshal(wire.Heartbeat{Service: "shop", InstanceID: "shop-1", StartedAt: now, SentAt: now, Interval: wire.Duration(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	// Counter families with labels appear once a signal has flowed.
	for _, in := range []struct {
		path string
		body []byte
	}{
		{wire.PathTraces, []byte(otlpSpan)},
		{wire.PathLogs, []byte(otlpLog)},
		{wire.PathHeartbeat, beat},
	} {
		if w := do(http.MethodPost, in.path, "", in.body); w.Code != http.StatusOK {
			t.Fatalf("POST %s: got %d %s, want 200", in.path, w.Code, w.Body)
		}
	}
	w := do(http.MethodGet, "/metrics", token, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200", w.Code)
	}
	return metricNamesFrom(t, w.Body)
}

const otlpSpan = `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},
"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /cart","kind":2,
"startTimeUnixNano":"1764000000000000000","endTimeUnixNano":"1764000000250000000"}]}]}]}`

const otlpLog = `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},
"scopeLogs":[{"logRecords":[{"timeUnixNano":"1764000000100000000","severityNumber":9,"body":{"stringValue":"cart loaded"}}]}]}]}`
