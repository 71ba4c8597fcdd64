package failover_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent"
	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
	"github.com/pilothouse/pilothouse/controlplane/server"
	"github.com/pilothouse/pilothouse/controlplane/server/servertest"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// agentToken is the shared agent token both replicas accept.
const agentToken = "failover-agent-token"

// within bounds every wait in these tests.
const within = 20 * time.Second

func init() { gin.SetMode(gin.ReleaseMode) }

// replica is one running control plane.
type replica struct {
	url      string
	srv      *server.Server
	operator string // an operator API token
}

// stop shuts the replica down: its listener closes and its long-polls end.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		t.Logf("shutdown %s: %v", r.url, err)
	}
}

// startReplica runs a control plane on its own data directory whose
// policies live in the Consul agent at consulAddr.
func startReplica(t *testing.T, consulAddr string) *replica {
	t.Helper()
	url, srv := servertest.Start(t, server.Config{Consul: consulAddr, AgentToken: agentToken})
	return &replica{url: url, srv: srv, operator: servertest.Token(t, srv, auth.RoleOperator)}
}

// putPolicy PUTs body as service's policy through r and returns the
// status and the answer's body.
func (r *replica) putPolicy(t *testing.T, service, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, r.url+"/api/v1/policies/"+service, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(wire.HeaderAuthorization, "Bearer "+r.operator)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("put policy through %s: %v", r.url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

// degradeReports is a policy for service, edited from version base, that
// answers GET /reports/daily with a fallback naming tag.
func degradeReports(service string, base int64, tag string) string {
	return fmt.Sprintf(`{"service":%q,"version":%d,"degradations":[{"id":"reports-off","match":{"route":"/reports/daily"},
"enabled":true,"fallback":{"status":200,"content_type":"application/json","body":"{\"from\":\"%s\"}"}}]}`, service, base, tag)
}

// TestAgentFailsOverToReplicaB: write through A, apply; shut A down; the
// policy stays in force; write through B, apply via B; spans and logs
// arrive at B.
func TestAgentFailsOverToReplicaB(t *testing.T) {
	c := consultest.Start(t)
	a, b := startReplica(t, c.Addr), startReplica(t, c.Addr)
	failOver(t, a, b, agentToken)
}

// TestAgentTokenFromAFailsOverToB: the agent's own token, limited to its
// service, was created on A (no shared --agent-token); B accepts it after
// A stops, because users and tokens are shared through Consul.
func TestAgentTokenFromAFailsOverToB(t *testing.T) {
	c := consultest.Start(t)
	start := func() *replica {
		url, srv := servertest.Start(t, server.Config{Consul: c.Addr})
		return &replica{url: url, srv: srv, operator: servertest.Token(t, srv, auth.RoleOperator)}
	}
	a, b := start(), start()
	secret, _, err := a.srv.Auth().CreateToken(context.Background(), auth.NewToken{
		Kind: auth.KindAgent, Name: "orders-agent", Services: []string{"orders"}, CreatedBy: "test"})
	if err != nil {
		t.Fatalf("create agent token on A: %v", err)
	}
	failOver(t, a, b, secret)
}

// failOver runs an agent of orders with token against A then B: write
// through A, apply; shut A down; the policy stays in force; write through
// B, apply via B; spans and logs arrive at B.
func failOver(t *testing.T, a, b *replica, token string) {
	t.Helper()
	ag, err := agent.New("orders",
		agent.WithControlPlanes(a.url, b.url),
		agent.WithToken(token),
		agent.WithInstanceID("orders-failover-1"),
		agent.WithLocalLog(io.Discard),
		agent.WithHeartbeatInterval(200*time.Millisecond),
		agent.WithPolicyWait(5*time.Second),
	)
	if err != nil {
		t.Fatalf("agent.New: got error %v, want nil", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ag.Shutdown(ctx)
	})
	eng := gin.New()
	eng.Use(ag.Middleware())
	eng.GET("/reports/daily", func(c *gin.Context) { c.String(http.StatusOK, "live report") })
	eng.GET("/orders/:id", func(c *gin.Context) {
		agent.Logger(c).Info("order read", "order", c.Param("id"))
		c.String(http.StatusOK, "order "+c.Param("id"))
	})
	get := func(path, requestID string) string {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if requestID != "" {
			req.Header.Set(wire.HeaderRequestID, requestID)
		}
		w := httptest.NewRecorder()
		eng.ServeHTTP(w, req)
		return w.Body.String()
	}
	enforces := func(tag string) func() (bool, string) {
		return func() (bool, string) {
			got := get("/reports/daily", "")
			return got == `{"from":"`+tag+`"}`, fmt.Sprintf("policy version %d, /reports/daily %q", ag.PolicyVersion(), got)
		}
	}

	if code, body := a.putPolicy(t, "orders", degradeReports("orders", 0, "v1")); code != http.StatusOK {
		t.Fatalf("put v1 through A: got %d %s, want 200", code, body)
	}
	await.Until(t, within, "the agent applies v1 written through A", enforces("v1"))
	await.Until(t, within, "spans arrive at A", arrived(a, "orders", get, "before-failover"))

	a.stop(t)
	// The policy in force stays while the agent finds B.
	for range 5 {
		if ok, state := enforces("v1")(); !ok {
			t.Fatalf("after A stopped: got %s, want v1 still enforced", state)
		}
	}
	if code, body := b.putPolicy(t, "orders", degradeReports("orders", 1, "v2")); code != http.StatusOK {
		t.Fatalf("put v2 through B: got %d %s, want 200", code, body)
	}
	await.Until(t, within, "the agent applies v2 written through B", enforces("v2"))
	if got := ag.PolicyVersion(); got != 2 {
		t.Errorf("got policy version %d, want 2", got)
	}
	await.Until(t, within, "spans and logs arrive at B", arrived(b, "orders", get, "after-failover"))
	await.Until(t, within, "B knows the instance from its heartbeats", func() (bool, string) {
		code, body := getJSON(t, b, "/api/v1/services")
		return code == http.StatusOK && strings.Contains(body, "orders-failover-1"), fmt.Sprintf("%d %s", code, body)
	})
}

// arrived sends a request tagged requestID through the agent on every
// try and reports whether its span and log line reached r's store.
func arrived(r *replica, service string, get func(path, requestID string) string, requestID string) func() (bool, string) {
	return func() (bool, string) {
		get("/orders/7", requestID)
		ctx := context.Background()
		traces, terr := r.srv.Store().Traces(ctx, store.TraceFilter{Service: service, RequestID: requestID})
		logs, lerr := r.srv.Store().Logs(ctx, store.LogFilter{RequestID: requestID})
		return len(traces) > 0 && len(logs) > 0,
			fmt.Sprintf("%d traces (err %v), %d logs (err %v) with request ID %s at %s", len(traces), terr, len(logs), lerr, requestID, r.url)
	}
}

// getJSON GETs path on r with its operator token.
func getJSON(t *testing.T, r *replica, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(wire.HeaderAuthorization, "Bearer "+r.operator)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestConcurrentWritesOneWinner: the same base version edited through A
// and B at once: one write wins, the other gets 409 naming the current
// version, and both replicas then serve the winner.
func TestConcurrentWritesOneWinner(t *testing.T) {
	c := consultest.Start(t)
	a, b := startReplica(t, c.Addr), startReplica(t, c.Addr)
	const rounds = 5
	for base := int64(0); base < rounds; base++ {
		t.Run(fmt.Sprintf("base %d", base), func(t *testing.T) {
			type answer struct {
				via        string
				code       int
				body, sent string
			}
			answers := make([]answer, 2)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, r := range []*replica{a, b} {
				via := [...]string{"A", "B"}[i]
				sent := degradeReports("payments", base, fmt.Sprintf("%s-%d", via, base))
				wg.Go(func() {
					<-start
					code, body := r.putPolicy(t, "payments", sent)
					answers[i] = answer{via: via, code: code, body: body, sent: via + "-" + fmt.Sprint(base)}
				})
			}
			close(start)
			wg.Wait()
			var winner, loser *answer
			for i := range answers {
				switch answers[i].code {
				case http.StatusOK:
					winner = &answers[i]
				case http.StatusConflict:
					loser = &answers[i]
				}
			}
			if winner == nil || loser == nil {
				t.Fatalf("got answers %+v, want one 200 and one 409", answers)
			}
			var conflict struct {
				Field          string `json:"field"`
				CurrentVersion int64  `json:"current_version"`
			}
			if err := json.Unmarshal([]byte(loser.body), &conflict); err != nil || conflict.Field != "version" || conflict.CurrentVersion != base+1 {
				t.Errorf("got 409 body %s (err %v), want field version and current_version %d", loser.body, err, base+1)
			}
			for _, r := range []*replica{a, b} {
				code, body := getJSON(t, r, "/api/v1/policies/payments")
				if code != http.StatusOK || !strings.Contains(body, winner.sent) || strings.Contains(body, loser.sent) {
					t.Errorf("policy at %s: got %d %s, want the winner %s", r.url, code, body, winner.sent)
				}
			}
		})
	}
}
