package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/consul"
	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
)

// startReplica runs a control plane on its own data directory whose
// policies live in the Consul agent at consulAddr.
func startReplica(tb testing.TB, consulAddr string) (string, *Server) {
	tb.Helper()
	return startReplicaWith(tb, Config{Consul: consulAddr})
}

// startReplicaWith is startReplica with cfg, whose data directory, admin
// password and hashing cost it fills in.
func startReplicaWith(tb testing.TB, cfg Config) (string, *Server) {
	tb.Helper()
	cfg.DataDir, cfg.AdminPassword, cfg.Auth = tb.TempDir(), testAdminPassword, auth.Config{BcryptCost: bcrypt.MinCost}
	srv, err := New(cfg)
	if err != nil {
		tb.Fatalf("new server: %v", err)
	}
	if _, ok := srv.Policies().(*consul.PolicyStore); !ok {
		tb.Fatalf("policy store: got %T, want *consul.PolicyStore", srv.Policies())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(ln)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String(), srv
}

func degradeOrders(base int64, enabled bool) string {
	return fmt.Sprintf(`{"service":"orders","version":%d,"degradations":[{"id":"reports-off","match":{"route":"/reports/daily"},
"enabled":%t,"fallback":{"status":200,"content_type":"application/json","body":"{}"}}]}`, base, enabled)
}

// putPolicy PUTs body as orders' policy on the control plane at url.
func putPolicy(tb testing.TB, client *http.Client, url, token, body string) int {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPut, url+"/api/v1/policies/orders", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("put policy: %v", err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// longPoll is an agent's policy long-poll: it returns once the request
// is on the wire, and the answer on the channel.
type pollAnswer struct {
	status  int
	version int64
	err     error
}

func longPoll(client *http.Client, url string, version int64) <-chan pollAnswer {
	out := make(chan pollAnswer, 1)
	wrote := make(chan struct{})
	go func() {
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
		ctx := httptrace.WithClientTrace(context.Background(), trace)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
			fmt.Sprintf("%s%s?service=orders&instance=b1&version=%d&wait=20s", url, wire.PathPolicy, version), nil)
		resp, err := client.Do(req)
		if err != nil {
			select {
			case <-wrote:
			default:
				close(wrote)
			}
			out <- pollAnswer{err: err}
			return
		}
		defer resp.Body.Close()
		ans := pollAnswer{status: resp.StatusCode}
		if resp.StatusCode == http.StatusOK {
			var up wire.PolicyUpdate
			ans.err = json.NewDecoder(resp.Body).Decode(&up)
			ans.version = up.Policy.Version
		}
		out <- ans
	}()
	<-wrote
	return out
}

// TestReplicasSharePoliciesThroughConsul: a policy written through
// replica A answers a long-poll held on replica B.
func TestReplicasSharePoliciesThroughConsul(t *testing.T) {
	c := consultest.Start(t)
	urlA, srvA := startReplica(t, c.Addr)
	urlB, srvB := startReplica(t, c.Addr)
	token := apiToken(t, srvA, auth.RoleOperator)
	client := &http.Client{}

	// Prime B so its watch on orders runs, then hold a long-poll there.
	if code, _ := get(t, urlB+wire.PathPolicy+"?service=orders&version=0&wait=0s", ""); code != http.StatusNotModified {
		t.Fatalf("short poll on B: got %d, want 304", code)
	}
	answer := longPoll(client, urlB, 0)
	if code := putPolicy(t, client, urlA, token, degradeOrders(0, true)); code != http.StatusOK {
		t.Fatalf("put on A: got %d, want 200", code)
	}
	select {
	case ans := <-answer:
		if ans.err != nil || ans.status != http.StatusOK || ans.version != 1 {
			t.Fatalf("long-poll on B: got status %d version %d err %v, want 200 version 1", ans.status, ans.version, ans.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long-poll on B was not answered after the write on A")
	}

	// B serves A's audit record: who changed what.
	hist, err := srvB.Policies().History(context.Background(), "orders", 0)
	if err != nil || len(hist) != 1 || hist[0].Actor == "" || hist[0].Action != "update" {
		t.Fatalf("history on B: got %+v err %v, want A's one change", hist, err)
	}
	// A stale edit conflicts.
	if code := putPolicy(t, client, urlA, token, degradeOrders(0, false)); code != http.StatusConflict {
		t.Errorf("stale put: got %d, want 409", code)
	}
	if got := srvA.Policies().Services(); !slices.Equal(got, []string{"orders"}) {
		t.Errorf("services: got %v, want [orders]", got)
	}
}

// BenchmarkConsulPropagation measures how long a policy written through
// replica A takes to answer a long-poll held on replica B (HTTP PUT on
// A, Consul transaction, blocking query on B, long-poll answer).
func BenchmarkConsulPropagation(b *testing.B) {
	c := consultest.Start(b)
	urlA, srvA := startReplica(b, c.Addr)
	urlB, _ := startReplica(b, c.Addr)
	token := operatorToken(b, srvA)
	client := &http.Client{}
	if ans := <-shortPoll(client, urlB); ans.err != nil || ans.status != http.StatusNotModified {
		b.Fatalf("short poll on B: got %d %v, want 304", ans.status, ans.err)
	}
	b.ReportAllocs()
	var lat []time.Duration
	version := int64(0)
	for b.Loop() {
		answer := longPoll(client, urlB, version)
		start := time.Now()
		if code := putPolicy(b, client, urlA, token, degradeOrders(version, version%2 == 0)); code != http.StatusOK {
			b.Fatalf("put version %d: got %d, want 200", version+1, code)
		}
		ans := <-answer
		lat = append(lat, time.Since(start))
		version++
		if ans.err != nil || ans.version != version {
			b.Fatalf("long-poll on B: got version %d err %v, want %d", ans.version, ans.err, version)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// operatorToken creates an operator API token on srv.
func operatorToken(tb testing.TB, srv *Server) string {
	tb.Helper()
	secret, _, err := srv.Auth().CreateToken(context.Background(), auth.NewToken{Kind: auth.KindAPI, Name: "bench-operator", Role: auth.RoleOperator, CreatedBy: "bench"})
	if err != nil {
		tb.Fatalf("create operator token: %v", err)
	}
	return secret
}

// shortPoll is a policy poll of orders at version 0 that does not wait.
func shortPoll(client *http.Client, url string) <-chan pollAnswer {
	out := make(chan pollAnswer, 1)
	resp, err := client.Get(url + wire.PathPolicy + "?service=orders&version=0&wait=0s")
	if err != nil {
		out <- pollAnswer{err: err}
		return out
	}
	resp.Body.Close()
	out <- pollAnswer{status: resp.StatusCode}
	return out
}
