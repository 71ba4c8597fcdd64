package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/pilothouse/pilothouse/agent"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/server"
)

// TestRealPrometheusScrapes runs a real Prometheus (if installed) with
// deploy/prometheus.yml against a real control plane and a real agent,
// and checks both targets are up and their metrics are queryable.
//
// Debian's prometheus is built without Consul service discovery, so the
// agents job's consul_sd_configs is swapped for a static target carrying
// the __meta_consul_* labels Consul SD would set: the job's relabelling
// runs for real.
func TestRealPrometheusScrapes(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus)")
	}
	dir := t.TempDir()

	// A control plane whose metrics token opens /metrics for the scrape.
	const token = "prometheus-scrape-token-for-tests"
	cp, err := server.New(server.Config{DataDir: filepath.Join(dir, "cp"), AdminPassword: "admin-password-for-tests", Auth: auth.Config{BcryptCost: bcrypt.MinCost},
		MetricsToken: token})
	if err != nil {
		t.Fatal(err)
	}
	cpAddr := serve(t, cp.Handler())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cp.Shutdown(ctx)
	}()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// An agent-instrumented service with one request recorded.
	gin.SetMode(gin.ReleaseMode)
	ag, err := agent.New("shop", agent.WithControlPlane(""), agent.WithLocalLog(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Shutdown(context.Background())
	r := gin.New()
	r.Use(ag.Middleware())
	r.GET("/hello", func(c *gin.Context) { c.String(http.StatusOK, "hi") })
	r.GET("/metrics", gin.WrapH(ag.MetricsHandler()))
	agentAddr := serve(t, r)
	if resp, err := http.Get("http://" + agentAddr + "/hello"); err == nil {
		resp.Body.Close()
	}

	cfgFile := filepath.Join(dir, "prometheus.yml")
	writeTestConfig(t, cfgFile, cpAddr, agentAddr, tokenFile)
	promAddr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	queries := []string{
		`up{job="pilothouse-controlplane"} == 1`,
		`up{job="pilothouse-agents", service="shop", instance="shop-1"} == 1`,
		`pilothouse_store_spans{job="pilothouse-controlplane"}`,
		`http_server_request_duration_seconds_count{service="shop", route="/hello"}`,
	}
	for _, q := range queries {
		if !eventually(30*time.Second, func() bool { return promHas(promAddr, q) }) {
			t.Errorf("query %s: got no series within 30s, want one", q)
		}
	}
}

// writeTestConfig rewrites deploy/prometheus.yml for loopback targets and
// a 1s scrape interval.
func writeTestConfig(t *testing.T, path, cpAddr, agentAddr, tokenFile string) {
	t.Helper()
	raw, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	for _, j := range cfg["scrape_configs"].([]any) {
		job := j.(map[string]any)
		switch job["job_name"] {
		case "pilothouse-controlplane":
			job["static_configs"] = []any{map[string]any{"targets": []any{cpAddr}}}
			job["authorization"].(map[string]any)["credentials_file"] = tokenFile
		case "pilothouse-agents":
			delete(job, "consul_sd_configs")
			job["static_configs"] = []any{map[string]any{"targets": []any{agentAddr}, "labels": map[string]any{
				"__meta_consul_service": "shop", "__meta_consul_service_id": "shop-1", "__meta_consul_health": "passing",
			}}}
		default:
			t.Fatalf("unexpected job %v", job["job_name"])
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// eventually polls cond every 200ms until it holds or d passes: the
// scrapes happen in another process on its own clock.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return cond()
}

func promHas(addr, query string) bool {
	resp, err := http.Get(fmt.Sprintf("http://%s/api/v1/query?query=%s", addr, url.QueryEscape(query)))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	return json.NewDecoder(resp.Body).Decode(&r) == nil && r.Status == "success" && len(r.Data.Result) > 0
}
