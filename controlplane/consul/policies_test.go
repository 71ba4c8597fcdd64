package consul

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
	"github.com/pilothouse/pilothouse/controlplane/policy"
	"github.com/pilothouse/pilothouse/controlplane/policyapi"
)

var _ policyapi.Store = (*PolicyStore)(nil)

var alice = policy.Author{Actor: "alice", Remote: "127.0.0.1", Reason: "incident 42"}

func degrade(service string, enabled bool) wire.Policy {
	return wire.Policy{Service: service, Degradations: []wire.DegradationRule{{
		RuleMeta: wire.RuleMeta{ID: "reports-off", Description: "switch reports off"},
		Match:    wire.Match{Route: "/reports/daily"},
		Enabled:  enabled,
		Fallback: wire.Response{Status: 200, ContentType: "application/json", Body: `{"orders":0}`},
	}}}
}

func openStore(t *testing.T, addr string) *PolicyStore {
	t.Helper()
	s, err := Open(context.Background(), Config{Address: addr, Now: func() time.Time {
		return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	}})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenFailsWithoutConsul(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there.
	_, err := Open(ctx, Config{Address: "127.0.0.1:1"})
	if !errors.Is(err, ErrConsul) {
		t.Fatalf("got %v, want ErrConsul", err)
	}
}

func TestPutHistoryRollback(t *testing.T) {
	srv := consultest.Start(t)
	s := openStore(t, srv.Addr)
	ctx := context.Background()

	if got := s.Current("orders").Version; got != 0 {
		t.Fatalf("empty current version: got %d, want 0", got)
	}
	p1, err := s.Put(ctx, degrade("orders", false), 0, alice)
	if err != nil || p1.Version != 1 {
		t.Fatalf("first put: got version %d err %v, want 1", p1.Version, err)
	}
	p2, err := s.Put(ctx, degrade("orders", true), 1, alice)
	if err != nil || p2.Version != 2 {
		t.Fatalf("second put: got version %d err %v, want 2", p2.Version, err)
	}
	_, err = s.Put(ctx, degrade("orders", false), 1, policy.Author{Actor: "bob"})
	var ce *policy.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, policy.ErrConflict) || ce.Current != 2 {
		t.Fatalf("stale edit: got %v, want a conflict naming version 2", err)
	}
	bad := wire.Policy{Service: "orders", Timeouts: []wire.TimeoutRule{{RuleMeta: wire.RuleMeta{ID: "t"}}}}
	if _, err := s.Put(ctx, bad, 2, alice); err == nil {
		t.Fatal("invalid policy accepted")
	}
	if _, err := s.Put(ctx, degrade("orders", true), 2, policy.Author{}); err == nil {
		t.Fatal("change without an actor accepted")
	}

	hist, err := s.History(ctx, "orders", 0)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history: got %d entries err %v, want 2", len(hist), err)
	}
	if hist[0].Version != 2 || hist[0].Actor != "alice" || hist[0].Reason != "incident 42" || hist[0].Action != "update" {
		t.Errorf("newest change: got %+v", hist[0])
	}
	if !strings.Contains(hist[0].Diff, `-      "enabled": false`) || !strings.Contains(hist[0].Diff, `+      "enabled": true`) {
		t.Errorf("diff does not show the toggle:\n%s", hist[0].Diff)
	}
	if got, want := hist[0].Time, time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("change time: got %s, want %s", got, want)
	}

	p3, err := s.Rollback(ctx, "orders", 1, 2, policy.Author{Actor: "carol"})
	if err != nil || p3.Version != 3 {
		t.Fatalf("rollback: got version %d err %v, want 3", p3.Version, err)
	}
	cur := s.Current("orders")
	if cur.Version != 3 || cur.Degradations[0].Enabled {
		t.Errorf("current after rollback: got version %d enabled %v, want 3 false", cur.Version, cur.Degradations[0].Enabled)
	}
	hist, err = s.History(ctx, "orders", 1)
	if err != nil || len(hist) != 1 {
		t.Fatalf("history limit 1: got %d entries err %v, want 1", len(hist), err)
	}
	if hist[0].Action != "rollback" || hist[0].Reason != "rollback to version 1" {
		t.Errorf("rollback record: got action %q reason %q", hist[0].Action, hist[0].Reason)
	}
	if _, err := s.Rollback(ctx, "orders", 9, 3, alice); !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("rollback to a missing version: got %v, want ErrNotFound", err)
	}

	if _, err := s.Put(ctx, degrade("payments", true), 0, alice); err != nil {
		t.Fatalf("put payments: %v", err)
	}
	if got, want := strings.Join(s.Services(), ","), "orders,payments"; got != want {
		t.Errorf("services: got %q, want %q", got, want)
	}

	// A fresh store (another replica) reads the same state.
	other := openStore(t, srv.Addr)
	if got := other.Current("orders").Version; got != 3 {
		t.Errorf("second store's current version: got %d, want 3", got)
	}
	if got, want := strings.Join(other.Services(), ","), "orders,payments"; got != want {
		t.Errorf("second store's services: got %q, want %q", got, want)
	}
}

func TestConflictOnModifyIndex(t *testing.T) {
	srv := consultest.Start(t)
	a := openStore(t, srv.Addr)
	b := openStore(t, srv.Addr)
	ctx := context.Background()

	// b writes after a read the head and before a commits: a's
	// check-and-set on the old ModifyIndex must fail.
	var bErr error
	a.beforeCommit = func() {
		_, bErr = b.Put(ctx, degrade("orders", true), 0, policy.Author{Actor: "bob"})
	}
	_, err := a.Put(ctx, degrade("orders", false), 0, alice)
	a.beforeCommit = nil
	if bErr != nil {
		t.Fatalf("b's put: %v", bErr)
	}
	var ce *policy.ConflictError
	if !errors.As(err, &ce) || ce.Current != 1 || ce.Base != 0 {
		t.Fatalf("a's put: got %v, want a conflict naming version 1", err)
	}
	cur := a.Current("orders")
	if cur.Version != 1 || !cur.Degradations[0].Enabled {
		t.Errorf("current: got version %d enabled %v, want b's version 1", cur.Version, cur.Degradations[0].Enabled)
	}
	hist, err := a.History(ctx, "orders", 0)
	if err != nil || len(hist) != 1 || hist[0].Actor != "bob" {
		t.Fatalf("history: got %+v err %v, want only bob's version", hist, err)
	}
}

func TestConcurrentWritersOneWins(t *testing.T) {
	srv := consultest.Start(t)
	stores := []*PolicyStore{openStore(t, srv.Addr), openStore(t, srv.Addr)}
	ctx := context.Background()
	const rounds = 10
	for round := range rounds {
		base := int64(round)
		errs := make([]error, len(stores))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range stores {
			wg.Go(func() {
				<-start
				_, errs[i] = s.Put(ctx, degrade("orders", i == 0), base, policy.Author{Actor: "writer"})
			})
		}
		close(start)
		wg.Wait()
		wins, conflicts := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, policy.ErrConflict):
				conflicts++
			default:
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if wins != 1 || conflicts != 1 {
			t.Fatalf("round %d: got %d wins %d conflicts, want 1 and 1", round, wins, conflicts)
		}
	}
	hist, err := stores[0].History(ctx, "orders", 0)
	if err != nil || len(hist) != rounds {
		t.Fatalf("history: got %d entries err %v, want %d", len(hist), err, rounds)
	}
}

func TestWatchSeesAnotherStoresWrite(t *testing.T) {
	srv := consultest.Start(t)
	a := openStore(t, srv.Addr)
	b := openStore(t, srv.Addr)
	ctx := context.Background()

	v, changed := b.WatchVersion("orders")
	if v != 0 {
		t.Fatalf("initial version: got %d, want 0", v)
	}
	for want := int64(1); want <= 3; want++ {
		if _, err := a.Put(ctx, degrade("orders", want%2 == 1), want-1, alice); err != nil {
			t.Fatalf("put %d: %v", want, err)
		}
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("b was not woken for version %d", want)
		}
		var p wire.Policy
		p, changed = b.Watch("orders")
		if p.Version != want {
			t.Fatalf("b's version after wake: got %d, want %d", p.Version, want)
		}
	}
}

func TestHistoryLimits(t *testing.T) {
	srv := consultest.Start(t)
	s := openStore(t, srv.Addr)
	ctx := context.Background()
	const versions = 70 // more than one transaction's worth of reads
	for v := range int64(versions) {
		if _, err := s.Put(ctx, degrade("orders", v%2 == 0), v, alice); err != nil {
			t.Fatalf("put %d: %v", v+1, err)
		}
	}
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{name: "all", limit: 0, want: versions},
		{name: "newest", limit: 1, want: 1},
		{name: "over one transaction", limit: 66, want: 66},
		{name: "more than there are", limit: 100, want: versions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hist, err := s.History(ctx, "orders", tt.limit)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			if len(hist) != tt.want {
				t.Fatalf("got %d entries, want %d", len(hist), tt.want)
			}
			for i, c := range hist {
				if want := int64(versions - i); c.Version != want {
					t.Fatalf("entry %d: got version %d, want %d", i, c.Version, want)
				}
			}
		})
	}
}

// TestConsulGoneKeepsLastKnown: with Consul gone, reads answer the last
// known policies (agents keep theirs) and writes fail with ErrConsul.
func TestConsulGoneKeepsLastKnown(t *testing.T) {
	srv := consultest.Start(t)
	s, err := Open(context.Background(), Config{Address: srv.Addr, RetryWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Put(ctx, degrade("orders", true), 0, alice); err != nil {
		t.Fatalf("put: %v", err)
	}
	srv.Stop()
	if got := s.Current("orders").Version; got != 1 {
		t.Errorf("current with Consul gone: got version %d, want 1", got)
	}
	if got := strings.Join(s.Services(), ","); got != "orders" {
		t.Errorf("services with Consul gone: got %q, want orders", got)
	}
	if _, err := s.Put(ctx, degrade("orders", false), 1, alice); !errors.Is(err, ErrConsul) {
		t.Errorf("put with Consul gone: got %v, want ErrConsul", err)
	}
	if _, err := s.History(ctx, "orders", 1); !errors.Is(err, ErrConsul) {
		t.Errorf("history with Consul gone: got %v, want ErrConsul", err)
	}
}
