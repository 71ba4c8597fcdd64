package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
)

// within bounds every wait for a change to reach the other replica.
const within = 20 * time.Second

// testClock is a settable clock shared by the replicas of a test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newClock() *testClock { return &testClock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)} }

// openAuth opens an auth store in its own directory; prepare runs on it
// before it is shared (its local rows), then it shares through Consul
// at addr.
func openAuth(t *testing.T, addr string, clock *testClock, prepare func(*auth.Store)) *auth.Store {
	t.Helper()
	return openAuthThrough(t, addr, clock, prepare, nil)
}

// openAuthThrough is openAuth with the store's view of Consul passed
// through wrap (nil: none).
func openAuthThrough(t *testing.T, addr string, clock *testClock, prepare func(*auth.Store), wrap func(auth.Shared) auth.Shared) *auth.Store {
	t.Helper()
	s, err := auth.Open(t.TempDir(), auth.Config{BcryptCost: bcrypt.MinCost, Now: clock.now})
	if err != nil {
		t.Fatalf("auth.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if prepare != nil {
		prepare(s)
	}
	kv, err := NewAuthKV(AuthConfig{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var sh auth.Shared = kv
	if wrap != nil {
		sh = wrap(kv)
	}
	if err := s.Share(ctx, sh, nil); err != nil {
		t.Fatalf("Share: %v", err)
	}
	return s
}

// twoReplicas opens two shared auth stores on one Consul; the first
// creates the admin.
func twoReplicas(t *testing.T) (a, b *auth.Store, srv *consultest.Server, clock *testClock) {
	t.Helper()
	srv = consultest.Start(t)
	clock = newClock()
	a = openAuth(t, srv.Addr, clock, nil)
	if _, err := a.EnsureAdmin(context.Background(), "admin-password"); err != nil {
		t.Fatalf("EnsureAdmin: %v", err)
	}
	b = openAuth(t, srv.Addr, clock, nil)
	return a, b, srv, clock
}

// refused waits until s no longer accepts the session id.
func refused(t *testing.T, s *auth.Store, id, what string) {
	t.Helper()
	await.Until(t, within, what, func() (bool, string) {
		_, err := s.Session(context.Background(), id)
		return auth.IsAuthError(err), fmt.Sprintf("Session: %v", err)
	})
}

// accepted waits until s accepts the session id.
func accepted(t *testing.T, s *auth.Store, id, what string) {
	t.Helper()
	await.Until(t, within, what, func() (bool, string) {
		_, err := s.Session(context.Background(), id)
		return err == nil, fmt.Sprintf("Session: %v", err)
	})
}

func TestAuthSharedUserAndSession(t *testing.T) {
	ctx := context.Background()
	a, b, srv, clock := twoReplicas(t)
	if pw, err := b.EnsureAdmin(ctx, ""); err != nil || pw != "" {
		t.Fatalf("second replica's EnsureAdmin: got %q, %v; want no new admin", pw, err)
	}

	if _, err := a.CreateUser(ctx, "alice", "alice-password", auth.RoleOperator); err != nil {
		t.Fatal(err)
	}
	var alice auth.User
	await.Until(t, within, "alice, created on A, signs in on B", func() (bool, string) {
		u, err := b.Authenticate(ctx, "alice", "alice-password")
		alice = u
		return err == nil, fmt.Sprintf("Authenticate: %v", err)
	})
	if alice.Role != auth.RoleOperator {
		t.Errorf("alice's role on B: got %q, want operator", alice.Role)
	}

	sess, err := a.CreateSession(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	accepted(t, b, sess.ID, "a session from A works on B")
	// Seen on B two minutes later: A learns it, so A does not end the
	// session as idle while it is used through B.
	clock.add(2 * time.Minute)
	seen := clock.now()
	if _, err := b.Session(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	await.Until(t, within, "last-seen time written on B reaches Consul", func() (bool, string) {
		keys, _, err := srv.Client(t).KV().List(DefaultAuthPrefix+"sessions/alice/", nil)
		want := fmt.Sprintf(`"seen_ns":%d`, seen.UnixNano())
		return err == nil && len(keys) == 1 && strings.Contains(string(keys[0].Value), want), fmt.Sprintf("keys %v, %v", keys, err)
	})
	if err := b.DeleteSession(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Session(ctx, sess.ID); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("logged-out session on B: got %v, want ErrUnauthenticated at once", err)
	}
	refused(t, a, sess.ID, "a session logged out on B is refused on A")
}

func TestAuthSharedUserDisabledOrDeleted(t *testing.T) {
	ctx := context.Background()
	a, b, _, _ := twoReplicas(t)
	for _, name := range []string{"carol", "dave"} {
		if _, err := a.CreateUser(ctx, name, "password-"+name, auth.RoleViewer); err != nil {
			t.Fatal(err)
		}
	}
	u, err := a.User(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	carol, err := a.CreateSession(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	u, _ = a.User(ctx, "dave")
	dave, err := a.CreateSession(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	accepted(t, b, carol.ID, "carol's session reaches B")
	accepted(t, b, dave.ID, "dave's session reaches B")

	disabled := true
	if _, err := b.UpdateUser(ctx, "carol", auth.UserChange{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteUser(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	refused(t, a, carol.ID, "a user disabled on B: their session is refused on A")
	refused(t, a, dave.ID, "a user deleted on B: their session is refused on A")
	await.Until(t, within, "dave is gone on A", func() (bool, string) {
		_, err := a.User(ctx, "dave")
		return errors.Is(err, auth.ErrNotFound), fmt.Sprintf("User: %v", err)
	})
	// The last enabled admin is guarded across replicas.
	if _, err := a.CreateUser(ctx, "root", "root-password", auth.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	await.Until(t, within, "root reaches B", func() (bool, string) {
		_, err := b.User(ctx, "root")
		return err == nil, fmt.Sprintf("User: %v", err)
	})
	viewer := auth.RoleViewer
	if _, err := b.UpdateUser(ctx, auth.AdminName, auth.UserChange{Role: &viewer}); err != nil {
		t.Fatalf("demote admin while root is an admin: %v", err)
	}
	if _, err := b.UpdateUser(ctx, "root", auth.UserChange{Role: &viewer}); !errors.Is(err, auth.ErrLastAdmin) {
		t.Errorf("demote the last admin: got %v, want ErrLastAdmin", err)
	}
	if err := a.DeleteUser(ctx, "root"); !errors.Is(err, auth.ErrLastAdmin) {
		t.Errorf("delete the last admin: got %v, want ErrLastAdmin", err)
	}
	// Re-enabling carol does not bring her old session back.
	enabled := false
	if _, err := a.UpdateUser(ctx, "carol", auth.UserChange{Disabled: &enabled}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*auth.Store{a, b} {
		if _, err := s.Session(ctx, carol.ID); err == nil {
			t.Errorf("carol's session ended by disabling her works again after enabling her")
		}
	}
}

func TestAuthSharedTokenRevoked(t *testing.T) {
	ctx := context.Background()
	a, b, srv, clock := twoReplicas(t)
	secret, tok, err := a.CreateToken(ctx, auth.NewToken{Kind: auth.KindAgent, Name: "shop", Services: []string{"orders"}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	await.Until(t, within, "an agent token created on A works on B", func() (bool, string) {
		got, err := b.LookupToken(ctx, auth.KindAgent, secret)
		return err == nil && got.ID == tok.ID && got.AllowsService("orders") && !got.AllowsService("payments"),
			fmt.Sprintf("LookupToken: %+v, %v", got, err)
	})
	// B uses the token a minute later: its last-used time is shared, off
	// the request path, racing the revocation below.
	clock.add(2 * time.Minute)
	if _, err := b.LookupToken(ctx, auth.KindAgent, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	await.Until(t, within, "a token revoked on A is refused on B", func() (bool, string) {
		_, err := b.LookupToken(ctx, auth.KindAgent, secret)
		return errors.Is(err, auth.ErrRevoked), fmt.Sprintf("LookupToken: %v", err)
	})
	// More use on B, later, never makes it active again anywhere.
	clock.add(2 * time.Minute)
	for range 3 {
		for _, s := range []*auth.Store{a, b} {
			if _, err := s.LookupToken(ctx, auth.KindAgent, secret); !errors.Is(err, auth.ErrRevoked) {
				t.Fatalf("revoked token: got %v, want ErrRevoked", err)
			}
		}
	}
	list, err := a.Tokens(ctx, auth.KindAgent)
	if err != nil || len(list) != 1 || list[0].Active() {
		t.Errorf("tokens on A: got %+v, %v; want the one token, revoked", list, err)
	}
	pair, _, err := srv.Client(t).KV().Get(DefaultAuthPrefix+"tokens/"+tok.ID, nil)
	if err != nil || pair == nil || !strings.Contains(string(pair.Value), `"revoked_ns":`) {
		t.Errorf("token in Consul: got %v, %v; want it revoked", pair, err)
	}
}

func TestAuthSharedCreateSameUserAtOnce(t *testing.T) {
	ctx := context.Background()
	a, b, _, _ := twoReplicas(t)
	for round := range 5 {
		name := fmt.Sprintf("erin%d", round)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []*auth.Store{a, b} {
			wg.Go(func() {
				_, errs[i] = s.CreateUser(ctx, name, "password-"+name, auth.RoleViewer)
			})
		}
		wg.Wait()
		ok, exists := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, auth.ErrExists):
				exists++
			default:
				t.Fatalf("%s: unexpected error %v", name, err)
			}
		}
		if ok != 1 || exists != 1 {
			t.Fatalf("%s created at once on A and B: got %v; want one success and one ErrExists", name, errs)
		}
	}
}

func TestAuthSharedJoiningReplicaFollows(t *testing.T) {
	ctx := context.Background()
	srv := consultest.Start(t)
	clock := newClock()
	var secret string
	// A single control plane with its own users and a token gets Consul:
	// it seeds the shared store with them.
	a := openAuth(t, srv.Addr, clock, func(s *auth.Store) {
		if _, err := s.EnsureAdmin(ctx, "first-admin-password"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateUser(ctx, "alice", "alice-password", auth.RoleOperator); err != nil {
			t.Fatal(err)
		}
		var err error
		if secret, _, err = s.CreateToken(ctx, auth.NewToken{Kind: auth.KindAPI, Name: "ci", Role: auth.RoleViewer}); err != nil {
			t.Fatal(err)
		}
	})
	if pw, err := a.EnsureAdmin(ctx, ""); err != nil || pw != "" {
		t.Fatalf("seeding replica's EnsureAdmin: got %q, %v; want nothing generated", pw, err)
	}
	// A second replica had generated an admin of its own, and a user.
	b := openAuth(t, srv.Addr, clock, func(s *auth.Store) {
		if _, err := s.EnsureAdmin(ctx, "second-admin-password"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateUser(ctx, "mallory", "mallory-password", auth.RoleAdmin); err != nil {
			t.Fatal(err)
		}
	})
	if pw, err := b.EnsureAdmin(ctx, ""); err != nil || pw != "" {
		t.Fatalf("joining replica's EnsureAdmin: got %q, %v; want no second admin password", pw, err)
	}
	if _, err := b.Authenticate(ctx, auth.AdminName, "first-admin-password"); err != nil {
		t.Errorf("shared admin on B: %v", err)
	}
	if _, err := b.Authenticate(ctx, auth.AdminName, "second-admin-password"); err == nil {
		t.Errorf("B's own admin password still works; want it replaced by the shared admin")
	}
	if _, err := b.User(ctx, "mallory"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("B's local-only user: got %v, want ErrNotFound", err)
	}
	if _, err := b.LookupToken(ctx, auth.KindAPI, secret); err != nil {
		t.Errorf("A's token on B: %v", err)
	}
	users, err := b.Users(ctx)
	if err != nil || len(users) != 2 {
		t.Errorf("users on B: got %+v, %v; want admin and alice", users, err)
	}
}

func TestAuthSharedConsulDown(t *testing.T) {
	ctx := context.Background()
	a, _, srv, _ := twoReplicas(t)
	admin, err := a.User(ctx, auth.AdminName)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := a.CreateSession(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	before, err := a.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	cctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	_, err = a.CreateUser(cctx, "frank", "frank-password", auth.RoleViewer)
	if !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("create user with Consul down: got %v, want ErrUnavailable", err)
	}
	if _, err := a.User(ctx, "frank"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("user after a failed create: got %v, want ErrNotFound (local copy unchanged)", err)
	}
	if _, _, err := a.CreateToken(cctx, auth.NewToken{Kind: auth.KindAPI, Name: "x", Role: auth.RoleViewer}); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("create token with Consul down: got %v, want ErrUnavailable", err)
	}
	if err := a.DeleteSession(cctx, sess.ID); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("logout with Consul down: got %v, want ErrUnavailable", err)
	}
	after, err := a.Users(ctx)
	if err != nil || len(after) != len(before) {
		t.Errorf("users: got %+v, %v; want %+v", after, err, before)
	}
	if _, err := a.Session(ctx, sess.ID); err != nil {
		t.Errorf("reading an existing session with Consul down: %v", err)
	}
	if _, err := a.Authenticate(ctx, auth.AdminName, "admin-password"); err != nil {
		t.Errorf("checking a password with Consul down: %v", err)
	}
}

func TestAuthSharedNoSecretsInConsul(t *testing.T) {
	ctx := context.Background()
	a, b, srv, _ := twoReplicas(t)
	const password = "a-very-secret-password"
	u, err := a.CreateUser(ctx, "grace", password, auth.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := a.CreateSession(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	newPassword := "another-secret-password"
	if _, err := b.UpdateUser(ctx, "grace", auth.UserChange{Password: &newPassword}); err != nil {
		t.Fatal(err)
	}
	api, _, err := a.CreateToken(ctx, auth.NewToken{Kind: auth.KindAPI, Name: "ci", Role: auth.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	agent, _, err := b.CreateToken(ctx, auth.NewToken{Kind: auth.KindAgent, Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	pairs, _, err := srv.Client(t).KV().List(DefaultAuthPrefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) < 5 {
		t.Fatalf("got %d keys under %s, want the rows", len(pairs), DefaultAuthPrefix)
	}
	secrets := []string{password, newPassword, "admin-password", sess.ID, sess.CSRF(), api, agent,
		strings.TrimPrefix(api, "pha_"), strings.TrimPrefix(agent, "phg_")}
	for _, p := range pairs {
		for _, secret := range secrets {
			if strings.Contains(p.Key, secret) || strings.Contains(string(p.Value), secret) {
				t.Errorf("key %s holds a secret in clear", p.Key)
			}
		}
	}
}

func TestAuthSharedSweepSessions(t *testing.T) {
	ctx := context.Background()
	a, b, srv, clock := twoReplicas(t)
	admin, err := a.User(ctx, auth.AdminName)
	if err != nil {
		t.Fatal(err)
	}
	old, err := a.CreateSession(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	clock.add(auth.DefaultIdleTimeout - time.Hour)
	fresh, err := a.CreateSession(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	accepted(t, b, fresh.ID, "the fresh session reaches B")
	clock.add(2 * time.Hour)
	if _, err := b.Session(ctx, old.ID); !errors.Is(err, auth.ErrExpired) {
		t.Fatalf("idle session: got %v, want ErrExpired", err)
	}
	if _, err := a.SweepSessions(ctx); err != nil {
		t.Fatal(err)
	}
	await.Until(t, within, "one session key left in Consul", func() (bool, string) {
		keys, _, err := srv.Client(t).KV().Keys(DefaultAuthPrefix+"sessions/", "", nil)
		return err == nil && len(keys) == 1, fmt.Sprintf("keys %v, %v", keys, err)
	})
	for _, s := range []*auth.Store{a, b} {
		if _, err := s.Session(ctx, old.ID); !auth.IsAuthError(err) {
			t.Errorf("swept session: got %v, want refused", err)
		}
		if _, err := s.Session(ctx, fresh.ID); err != nil {
			t.Errorf("fresh session after the sweep: %v", err)
		}
	}
}

func TestAuthSharedPrefixEmptied(t *testing.T) {
	ctx := context.Background()
	a, b, srv, _ := twoReplicas(t)
	if _, err := a.CreateUser(ctx, "heidi", "heidi-password", auth.RoleViewer); err != nil {
		t.Fatal(err)
	}
	await.Until(t, within, "heidi reaches B", func() (bool, string) {
		_, err := b.User(ctx, "heidi")
		return err == nil, fmt.Sprintf("User: %v", err)
	})
	kv := srv.Client(t).KV()
	if _, err := kv.DeleteTree(DefaultAuthPrefix, nil); err != nil {
		t.Fatal(err)
	}
	// The replicas keep their copies and refuse changes, which would
	// land in a shared store that lost its rows.
	_, err := b.CreateUser(ctx, "ivan", "ivan-password", auth.RoleViewer)
	if !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("create user after the prefix was emptied: got %v, want ErrUnavailable", err)
	}
	keys, _, err := kv.Keys(DefaultAuthPrefix, "", nil)
	if err != nil || len(keys) != 0 {
		t.Errorf("keys after a refused change: got %v, %v; want none", keys, err)
	}
	for _, s := range []*auth.Store{a, b} {
		if _, err := s.Authenticate(ctx, "heidi", "heidi-password"); err != nil {
			t.Errorf("heidi after the prefix was emptied: %v", err)
		}
	}
}

// TestAuthSharedRaces: changes that race across replicas never leave a
// session alive that one of them ended.
func TestAuthSharedRaces(t *testing.T) {
	ctx := context.Background()
	a, b, _, clock := twoReplicas(t)
	if _, err := a.CreateUser(ctx, "judy", "judy-password", auth.RoleViewer); err != nil {
		t.Fatal(err)
	}
	var judy auth.User
	await.Until(t, within, "judy reaches B", func() (bool, string) {
		var err error
		judy, err = b.User(ctx, "judy")
		return err == nil, fmt.Sprintf("User: %v", err)
	})

	t.Run("logout on B right after sign-in on A", func(t *testing.T) {
		for range 5 {
			sess, err := a.CreateSession(ctx, judy)
			if err != nil {
				t.Fatal(err)
			}
			// B may not have seen the session yet: it looks it up.
			if err := b.DeleteSession(ctx, sess.ID); err != nil {
				t.Fatal(err)
			}
			refused(t, a, sess.ID, "A refuses the session logged out on B")
			refused(t, b, sess.ID, "B refuses the session it logged out")
		}
	})

	t.Run("password change on B while A signs in", func(t *testing.T) {
		for round := range 5 {
			// Both replicas know judy as she is now.
			await.Until(t, within, "A and B agree on judy", func() (bool, string) {
				ua, erra := a.User(ctx, "judy")
				ub, errb := b.User(ctx, "judy")
				judy = ua
				return erra == nil && errb == nil && ua.Updated.Equal(ub.Updated), fmt.Sprintf("A %+v %v, B %+v %v", ua, erra, ub, errb)
			})
			// Time moves, as it does between a sign-in and a change.
			clock.add(time.Second)
			pw := fmt.Sprintf("judy-password-%d", round)
			var (
				wg   sync.WaitGroup
				sess auth.Session
				serr error
			)
			wg.Go(func() { sess, serr = a.CreateSession(ctx, judy) })
			wg.Go(func() {
				if _, err := b.UpdateUser(ctx, "judy", auth.UserChange{Password: &pw}); err != nil {
					t.Errorf("password change: %v", err)
				}
			})
			wg.Wait()
			if serr != nil {
				if !errors.Is(serr, auth.ErrUnauthenticated) {
					t.Fatalf("sign-in racing a password change: got %v, want nil or ErrUnauthenticated", serr)
				}
				continue
			}
			// Signed in with the password as it was: the change ends the
			// session wherever it committed first.
			refused(t, a, sess.ID, "A: the session does not outlive the password change")
			refused(t, b, sess.ID, "B: the session does not outlive the password change")
		}
	})
}

// stalledWatch is Consul as seen by a replica whose watcher has fallen
// behind: its blocking queries never answer (until the test ends), while
// reads at once and commits go through.
type stalledWatch struct {
	auth.Shared
	reads *atomic.Int64 // reads at once
}

func (w stalledWatch) List(ctx context.Context, waitIndex uint64) (auth.Snapshot, error) {
	if waitIndex != 0 {
		<-ctx.Done()
		return auth.Snapshot{}, ctx.Err()
	}
	w.reads.Add(1)
	return w.Shared.List(ctx, waitIndex)
}

// TestAuthSharedLookupCatchesUp: a browser sent back from a sign-in on A
// may ask B before B's watcher has applied the new session, and a token
// made on A may be used on B at once. B looks for what it does not know
// in Consul before refusing it.
func TestAuthSharedLookupCatchesUp(t *testing.T) {
	ctx := context.Background()
	srv := consultest.Start(t)
	clock := newClock()
	a := openAuth(t, srv.Addr, clock, nil)
	if _, err := a.EnsureAdmin(ctx, "admin-password"); err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	b := openAuthThrough(t, srv.Addr, clock, nil, func(sh auth.Shared) auth.Shared { return stalledWatch{sh, &reads} })

	admin, err := a.Authenticate(ctx, auth.AdminName, "admin-password")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := a.CreateSession(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Session(ctx, sess.ID); err != nil {
		t.Errorf("B, right after the sign-in on A: got %v, want the session", err)
	}
	secret, _, err := a.CreateToken(ctx, auth.NewToken{Kind: auth.KindAPI, Name: "ci", Role: auth.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.LookupToken(ctx, auth.KindAPI, secret); err != nil {
		t.Errorf("B, right after the token was made on A: got %v, want the token", err)
	}
	// Unknown cookies read Consul a bounded number of times (a burst of
	// 10, then one per 100 ms), then are refused from the local copy.
	before, start := reads.Load(), time.Now()
	for i := range 200 {
		if _, err := b.Session(ctx, fmt.Sprintf("made-up-%d", i)); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("made-up session: got %v, want ErrUnauthenticated", err)
		}
	}
	limit := 10 + int64(time.Since(start)/(100*time.Millisecond)) + 1
	if n := reads.Load() - before; n > limit {
		t.Errorf("200 made-up sessions read Consul %d times, want at most %d", n, limit)
	}
}
