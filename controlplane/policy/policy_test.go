package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

var ctx = context.Background()

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	clock := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	s, err := Open(dir, func() time.Time { return clock })
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func degrade(enabled bool) wire.Policy {
	return wire.Policy{Service: "orders", Degradations: []wire.DegradationRule{{
		RuleMeta: wire.RuleMeta{ID: "reports-off", Description: "switch reports off"},
		Match:    wire.Match{Route: "/reports/daily"},
		Enabled:  enabled,
		Fallback: wire.Response{Status: 200, ContentType: "application/json", Body: `{"orders":0}`},
	}}}
}

var alice = Author{Actor: "alice", Remote: "127.0.0.1", Reason: "incident 42"}

func TestPutVersionsAndConflicts(t *testing.T) {
	s := openStore(t, t.TempDir())
	if got := s.Current("orders").Version; got != 0 {
		t.Fatalf("empty current version: got %d, want 0", got)
	}
	p1, err := s.Put(ctx, degrade(false), 0, alice)
	if err != nil || p1.Version != 1 {
		t.Fatalf("first put: got version %d err %v, want 1", p1.Version, err)
	}
	p2, err := s.Put(ctx, degrade(true), 1, alice)
	if err != nil || p2.Version != 2 {
		t.Fatalf("second put: got version %d err %v, want 2", p2.Version, err)
	}
	_, err = s.Put(ctx, degrade(false), 1, Author{Actor: "bob"})
	var ce *ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || ce.Current != 2 {
		t.Fatalf("stale edit: got %v, want a conflict naming version 2", err)
	}
	if _, err := s.Put(ctx, wire.Policy{Service: "orders", Timeouts: []wire.TimeoutRule{{RuleMeta: wire.RuleMeta{ID: "t"}}}}, 2, alice); err == nil {
		t.Fatal("invalid policy accepted")
	}
	hist, err := s.History(ctx, "orders", 0)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history: got %d entries err %v, want 2", len(hist), err)
	}
	if hist[0].Version != 2 || hist[0].Actor != "alice" || hist[0].Reason != "incident 42" {
		t.Errorf("newest change: got %+v", hist[0])
	}
	if !strings.Contains(hist[0].Diff, `-      "enabled": false`) || !strings.Contains(hist[0].Diff, `+      "enabled": true`) {
		t.Errorf("diff does not show the toggle:\n%s", hist[0].Diff)
	}
}

func TestRollbackMakesANewVersion(t *testing.T) {
	s := openStore(t, t.TempDir())
	mustPut(t, s, degrade(false), 0)
	mustPut(t, s, degrade(true), 1)
	p, err := s.Rollback(ctx, "orders", 1, 2, alice)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 3 || p.Degradations[0].Enabled {
		t.Errorf("rollback: got version %d enabled %v, want 3 and false", p.Version, p.Degradations[0].Enabled)
	}
	if _, err := s.Rollback(ctx, "orders", 9, 3, alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("rollback to a missing version: got %v, want ErrNotFound", err)
	}
	c, _ := s.Version(ctx, "orders", 3)
	if c.Action != "rollback" {
		t.Errorf("action: got %q, want rollback", c.Action)
	}
}

func TestSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	mustPut(t, s, degrade(true), 0)
	s.Close()
	s2 := openStore(t, dir)
	if p := s2.Current("orders"); p.Version != 1 || !p.Degradations[0].Enabled {
		t.Errorf("after reopen: got %+v", p)
	}
	if got := s2.Services(); len(got) != 1 || got[0] != "orders" {
		t.Errorf("services: got %v", got)
	}
}

func TestWatchWakesOnChange(t *testing.T) {
	s := openStore(t, t.TempDir())
	cur, ch := s.Watch("orders")
	if cur.Version != 0 {
		t.Fatalf("got version %d, want 0", cur.Version)
	}
	select {
	case <-ch:
		t.Fatal("woken before any change")
	default:
	}
	mustPut(t, s, degrade(true), 0)
	select {
	case <-ch:
	default:
		t.Fatal("not woken by a change")
	}
	if cur, _ := s.Watch("orders"); cur.Version != 1 {
		t.Errorf("after change: got version %d, want 1", cur.Version)
	}
}

func mustPut(t *testing.T, s *Store, p wire.Policy, base int64) wire.Policy {
	t.Helper()
	out, err := s.Put(ctx, p, base, alice)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	return out
}

func TestStoreKeepsItsOwnCopy(t *testing.T) {
	s := openStore(t, t.TempDir())
	p := degrade(false)
	mustPut(t, s, p, 0)
	p.Degradations[0].Enabled = true // the caller changes its slice afterwards
	got := s.Current("orders")
	if got.Degradations[0].Enabled {
		t.Fatal("a caller's change after Put reached the stored policy")
	}
	got.Degradations[0].Description = "changed by a reader"
	if s.Current("orders").Degradations[0].Description == "changed by a reader" {
		t.Fatal("a reader's change reached the stored policy")
	}
}
