package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

func TestControlPlaneList(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		opts    []Option
		want    []string
		wantErr string // part of the error; "" for none
	}{
		{name: "none", want: nil},
		{name: "one from env", env: "http://a:7070/", want: []string{"http://a:7070"}},
		{name: "list from env", env: " http://a:7070, https://b:7070/ ,", want: []string{"http://a:7070", "https://b:7070"}},
		{name: "duplicates once", env: "http://a,http://a/", want: []string{"http://a"}},
		{name: "bad one in env named", env: "http://a,ftp://b", wantErr: `PILOTHOUSE_URL: control plane 2: "ftp://b" is not an http(s) URL`},
		{name: "option wins over env", env: "http://env", opts: []Option{WithControlPlanes("http://a", "http://b")},
			want: []string{"http://a", "http://b"}},
		{name: "single option", env: "http://env", opts: []Option{WithControlPlane("http://a/")}, want: []string{"http://a"}},
		{name: "empty option disables", env: "http://env", opts: []Option{WithControlPlane("")}, want: nil},
		{name: "no URLs disable", env: "http://env", opts: []Option{WithControlPlanes()}, want: nil},
		{name: "bad option named", opts: []Option{WithControlPlanes("http://a", "b:7070")}, wantErr: `control plane 2: "b:7070"`},
		{name: "empty entry in option", opts: []Option{WithControlPlanes("http://a", "")}, wantErr: `control plane 2: "" is not`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := func(k string) string {
				if k == wire.EnvURL {
					return tt.env
				}
				return ""
			}
			cfg, err := newConfig(append([]Option{withEnv(env)}, tt.opts...))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want ErrInvalidConfig containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if !slices.Equal(cfg.controlPlaneURLs, tt.want) {
				t.Errorf("got URLs %q, want %q", cfg.controlPlaneURLs, tt.want)
			}
			wantFirst := ""
			if len(tt.want) > 0 {
				wantFirst = tt.want[0]
			}
			if cfg.controlPlane != wantFirst {
				t.Errorf("got controlPlane %q, want %q", cfg.controlPlane, wantFirst)
			}
			if (cfg.planes == nil) != (len(tt.want) == 0) {
				t.Errorf("got planes %v, want them only with URLs", cfg.planes)
			}
		})
	}
}

func TestControlPlanesFailedMovesOnce(t *testing.T) {
	tests := []struct {
		name   string
		urls   []string
		failed []int // indexes reported in order
		want   int
	}{
		{name: "no failure", urls: []string{"a", "b"}, want: 0},
		{name: "current fails", urls: []string{"a", "b"}, failed: []int{0}, want: 1},
		{name: "two senders fail on the same one", urls: []string{"a", "b", "c"}, failed: []int{0, 0}, want: 1},
		{name: "stale report ignored", urls: []string{"a", "b", "c"}, failed: []int{0, 0, 1, 0}, want: 2},
		{name: "round robin wraps", urls: []string{"a", "b"}, failed: []int{0, 1}, want: 0},
		{name: "single replica stays", urls: []string{"a"}, failed: []int{0, 0}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newControlPlanes(tt.urls)
			for _, i := range tt.failed {
				p.failed(i)
			}
			got, base := p.current()
			if got != tt.want || base != tt.urls[tt.want] {
				t.Errorf("got current %d (%s), want %d (%s)", got, base, tt.want, tt.urls[tt.want])
			}
		})
	}
}

func TestIsReplicaFailure(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	errNet := errors.New("connection refused")
	tests := []struct {
		name   string
		ctx    context.Context
		status int // 0: transport error
		want   bool
	}{
		{name: "network error", ctx: context.Background(), want: true},
		{name: "deadline passed", ctx: expired, want: true},
		{name: "own cancellation", ctx: canceled, want: false},
		{name: "ok", ctx: context.Background(), status: http.StatusOK, want: false},
		{name: "not modified", ctx: context.Background(), status: http.StatusNotModified, want: false},
		{name: "unauthorized", ctx: context.Background(), status: http.StatusUnauthorized, want: false},
		{name: "bad request", ctx: context.Background(), status: http.StatusBadRequest, want: false},
		{name: "too many requests", ctx: context.Background(), status: http.StatusTooManyRequests, want: true},
		{name: "unavailable", ctx: context.Background(), status: http.StatusServiceUnavailable, want: true},
		{name: "bad gateway", ctx: context.Background(), status: http.StatusBadGateway, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			var err error
			if tt.status == 0 {
				err = errNet
			} else {
				resp = &http.Response{StatusCode: tt.status}
			}
			if got := isReplicaFailure(tt.ctx, resp, err); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// replica is a fake control-plane replica: it serves one policy version
// and records what it receives, per path.
type replica struct {
	*httptest.Server
	mu      sync.Mutex
	status  int // when not 0, every request is answered with it
	policy  wire.Policy
	hits    map[string]int
	auth    map[string]bool // Authorization values seen
	polled  []string        // the version query of every policy poll
	changed chan struct{}
}

func newReplica(t *testing.T, policy wire.Policy) *replica {
	t.Helper()
	r := &replica{policy: policy, hits: map[string]int{}, auth: map[string]bool{}, changed: make(chan struct{})}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *replica) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.hits[req.URL.Path]++
	r.auth[req.Header.Get(wire.HeaderAuthorization)] = true
	status, policy, changed := r.status, r.policy, r.changed
	if req.URL.Path == wire.PathPolicy {
		r.polled = append(r.polled, req.URL.Query().Get("version"))
	}
	r.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	if req.URL.Path != wire.PathPolicy {
		return
	}
	if req.URL.Query().Get("version") == strconv.FormatInt(policy.Version, 10) {
		if !holdPoll(w, req, changed) {
			return
		}
		r.mu.Lock()
		policy = r.policy
		r.mu.Unlock()
	}
	_ = json.NewEncoder(w).Encode(wire.PolicyUpdate{Policy: policy})
}

func (r *replica) setPolicy(p wire.Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.policy = p
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *replica) setStatus(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = code
}

func (r *replica) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

func (r *replica) polledFrom(version string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.polled, version)
}

func (r *replica) authSeen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.auth {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func rateLimitPolicy(version int64) wire.Policy {
	return wire.Policy{Service: "svc", Version: version, RateLimits: []wire.RateLimitRule{{
		RuleMeta: wire.RuleMeta{ID: "rl-" + strconv.FormatInt(version, 10)},
		Match:    wire.Match{Route: "/users/:id"}, Rate: 1000, Burst: 1000,
	}}}
}

// TestFailoverToNextReplica: when replica A stops answering, beats, spans,
// logs and policy polls all go to B, the policy in force is kept and the
// long-poll continues on B from the version A gave.
func TestFailoverToNextReplica(t *testing.T) {
	tests := []struct {
		name string
		fail func(a *replica)
	}{
		{name: "closed", fail: func(a *replica) { a.CloseClientConnections(); a.Close() }},
		{name: "503", fail: func(a *replica) { a.setStatus(http.StatusServiceUnavailable) }},
		{name: "429", fail: func(a *replica) { a.setStatus(http.StatusTooManyRequests) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra, rb := newReplica(t, rateLimitPolicy(1)), newReplica(t, rateLimitPolicy(1))
			ag, _ := newTestAgent(t, WithControlPlanes(ra.URL, rb.URL), WithToken("tok"),
				WithHeartbeatInterval(wire.MinBeatInterval), WithPolicyWait(100*time.Millisecond),
				withPolicyBackoff(10*time.Millisecond, 50*time.Millisecond))
			eng := newEngine(ag)
			traffic := func() { serve(t, eng, http.MethodGet, "/users/7", nil) }

			traffic()
			waitFor(t, "policy 1 from A", func() bool { return ag.PolicyVersion() == 1 })
			waitFor(t, "spans and logs at A", func() bool {
				return ra.count(wire.PathTraces) > 0 && ra.count(wire.PathLogs) > 0 && ra.count(wire.PathHeartbeat) > 0
			})
			if n := rb.count(wire.PathHeartbeat) + rb.count(wire.PathPolicy); n != 0 {
				t.Fatalf("got %d requests at B while A works, want 0", n)
			}

			tt.fail(ra)
			waitFor(t, "beats, spans, logs and polls at B", func() bool {
				traffic()
				return rb.count(wire.PathHeartbeat) > 0 && rb.count(wire.PathTraces) > 0 &&
					rb.count(wire.PathLogs) > 0 && rb.polledFrom("1")
			})
			if got := ag.PolicyVersion(); got != 1 {
				t.Errorf("got policy version %d after the switch, want 1 (kept)", got)
			}
			if w := serve(t, eng, http.MethodGet, "/users/7", nil); w.Code != http.StatusOK {
				t.Errorf("got status %d while switching, want 200", w.Code)
			}

			rb.setPolicy(rateLimitPolicy(2))
			waitFor(t, "policy 2 from B", func() bool { return ag.PolicyVersion() == 2 })
			if got, want := rb.authSeen(), []string{"Bearer tok"}; !slices.Equal(got, want) {
				t.Errorf("got Authorization %q at B, want %q", got, want)
			}
			// B works: the agent stays there.
			before := ra.count(wire.PathHeartbeat)
			beats := rb.count(wire.PathHeartbeat)
			waitFor(t, "more beats at B", func() bool { return rb.count(wire.PathHeartbeat) >= beats+3 })
			if got := ra.count(wire.PathHeartbeat); got != before {
				t.Errorf("got %d more beats at A after the switch, want 0", got-before)
			}
		})
	}
}

// TestTokenOnlyToControlPlanes: a third-party traces endpoint gets no
// token and does not move with the replicas; a replica's own traces path
// follows the current replica.
func TestTokenOnlyToControlPlanes(t *testing.T) {
	ra, rb, collector := newReplica(t, wire.Policy{}), newReplica(t, wire.Policy{}), newReplica(t, wire.Policy{})
	tests := []struct {
		name      string
		endpoint  string
		receiver  *replica
		wantAuth  string
		wantMoves bool
	}{
		{name: "collector", endpoint: collector.URL + wire.PathTraces, receiver: collector, wantAuth: ""},
		{name: "replica B's traces path", endpoint: rb.URL + wire.PathTraces, receiver: ra, wantAuth: "Bearer tok", wantMoves: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := newConfig([]Option{withEnv(noEnv), WithControlPlanes(ra.URL, rb.URL), WithToken("tok"),
				WithTracesEndpoint(tt.endpoint)})
			if err != nil {
				t.Fatalf("newConfig: got error %v, want nil", err)
			}
			post := cfg.poster(cfg.traces)
			if got := post.planes != nil; got != tt.wantMoves {
				t.Errorf("got follows replicas %v, want %v", got, tt.wantMoves)
			}
			if post.token != strings.TrimPrefix(tt.wantAuth, "Bearer ") {
				t.Errorf("got token %q, want %q", post.token, tt.wantAuth)
			}
			before := tt.receiver.count(wire.PathTraces)
			if err := post.send(context.Background(), nil); err != nil {
				t.Fatalf("send: got error %v, want nil", err)
			}
			if got := tt.receiver.count(wire.PathTraces); got != before+1 {
				t.Errorf("got %d requests at the receiver, want %d", got, before+1)
			}
			if got := tt.receiver.authSeen(); !slices.Contains(got, tt.wantAuth) {
				t.Errorf("got Authorization %q, want %q among them", got, tt.wantAuth)
			}
		})
	}
}

// TestBatchResentOnce: the batch a failing replica refuses is sent once
// more: to the next replica when there is one, else to the same one after
// a pause; a refusal that another try would not change is not resent.
func TestBatchResentOnce(t *testing.T) {
	tests := []struct {
		name      string
		replicas  int
		status    int
		wantAtA   int
		wantAtB   int
		wantError bool
	}{
		{name: "two replicas", replicas: 2, status: http.StatusServiceUnavailable, wantAtA: 1, wantAtB: 1},
		{name: "one replica, still failing", replicas: 1, status: http.StatusServiceUnavailable, wantAtA: 2, wantError: true},
		{name: "one replica, 429", replicas: 1, status: http.StatusTooManyRequests, wantAtA: 2, wantError: true},
		{name: "bad request is final", replicas: 2, status: http.StatusBadRequest, wantAtA: 1, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra, rb := newReplica(t, rateLimitPolicy(1)), newReplica(t, rateLimitPolicy(1))
			ra.setStatus(tt.status)
			urls := []string{ra.URL, rb.URL}[:tt.replicas]
			p := poster{planes: newControlPlanes(urls), path: wire.PathLogs, client: http.DefaultClient, what: "logs",
				resendAfter: time.Millisecond}
			err := p.send(context.Background(), []byte("batch"))
			if (err != nil) != tt.wantError {
				t.Fatalf("send: got error %v, want error %v", err, tt.wantError)
			}
			if got := ra.count(wire.PathLogs); got != tt.wantAtA {
				t.Errorf("posts at A: got %d, want %d", got, tt.wantAtA)
			}
			if got := rb.count(wire.PathLogs); got != tt.wantAtB {
				t.Errorf("posts at B: got %d, want %d", got, tt.wantAtB)
			}
		})
	}
}

// TestBatchBridgesARestart: with one control plane, a batch refused while
// it restarts arrives when it answers again by the second try.
func TestBatchBridgesARestart(t *testing.T) {
	var posts atomic.Int32
	cp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if posts.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // restarting
		}
	}))
	defer cp.Close()
	p := poster{planes: newControlPlanes([]string{cp.URL}), path: wire.PathTraces, client: http.DefaultClient, what: "spans",
		resendAfter: time.Millisecond}
	if err := p.send(context.Background(), []byte("batch")); err != nil {
		t.Fatalf("send: got %v, want nil (resent after the restart)", err)
	}
	if got := posts.Load(); got != 2 {
		t.Errorf("posts: got %d, want 2", got)
	}
}
