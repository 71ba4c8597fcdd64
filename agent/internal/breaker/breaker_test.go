package breaker

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type step struct {
	name      string
	at        time.Duration
	call      bool // ask Allow, and Record the outcome if allowed
	failed    bool
	slow      bool
	wantAllow bool
	wantState State
}

func runSteps(t *testing.T, b *Breaker, steps []step) {
	t.Helper()
	for _, s := range steps {
		now := t0.Add(s.at)
		if s.call {
			gen, ok := b.Allow(now)
			if ok != s.wantAllow {
				t.Fatalf("%s: allow got %v, want %v", s.name, ok, s.wantAllow)
			}
			if ok {
				b.Record(gen, now, s.failed, s.slow)
			}
		}
		if got := b.State(now); got != s.wantState {
			t.Fatalf("%s: state got %s, want %s", s.name, got, s.wantState)
		}
	}
}

func TestErrorRatio(t *testing.T) {
	var changes []string
	b := New(Settings{Threshold: 0.5, MinRequests: 4, Window: 10 * time.Second, OpenFor: 5 * time.Second, HalfOpenProbes: 2,
		OnStateChange: func(from, to State, reason string) {
			changes = append(changes, from.String()+"->"+to.String()+": "+reason)
		}})
	runSteps(t, b, []step{
		{name: "ok 1", at: 0, call: true, wantAllow: true, wantState: Closed},
		{name: "fail 1", at: time.Second, call: true, failed: true, wantAllow: true, wantState: Closed},
		{name: "fail 2 (below min requests)", at: 2 * time.Second, call: true, failed: true, wantAllow: true, wantState: Closed},
		{name: "ok 2: 2 of 4 failed trips", at: 3 * time.Second, call: true, wantAllow: true, wantState: Open},
		{name: "open refuses", at: 4 * time.Second, call: true, wantAllow: false, wantState: Open},
		{name: "half-open after open_for", at: 8 * time.Second, wantState: HalfOpen},
		{name: "probe 1 ok", at: 8 * time.Second, call: true, wantAllow: true, wantState: HalfOpen},
		{name: "probe 2 ok closes", at: 8 * time.Second, call: true, wantAllow: true, wantState: Closed},
	})
	if len(changes) != 3 || changes[0] != "closed->open: errors 50% of 4 calls (threshold 50%)" {
		t.Errorf("state changes: got %q", changes)
	}
}

func TestHalfOpenProbeFailureReopens(t *testing.T) {
	b := New(Settings{Strategy: ConsecutiveErrors, Threshold: 2, OpenFor: time.Second, HalfOpenProbes: 1})
	runSteps(t, b, []step{
		{name: "fail", at: 0, call: true, failed: true, wantAllow: true, wantState: Closed},
		{name: "ok resets the run", at: 0, call: true, wantAllow: true, wantState: Closed},
		{name: "fail 1", at: 0, call: true, failed: true, wantAllow: true, wantState: Closed},
		{name: "fail 2 trips", at: 0, call: true, failed: true, wantAllow: true, wantState: Open},
		{name: "probe fails", at: time.Second, call: true, failed: true, wantAllow: true, wantState: Open},
		{name: "open again", at: 1500 * time.Millisecond, call: true, wantAllow: false, wantState: Open},
	})
}

func TestHalfOpenLimitsProbes(t *testing.T) {
	b := New(Settings{Strategy: ConsecutiveErrors, Threshold: 1, OpenFor: time.Second, HalfOpenProbes: 1})
	gen, _ := b.Allow(t0)
	b.Record(gen, t0, true, false)
	now := t0.Add(time.Second)
	if _, ok := b.Allow(now); !ok {
		t.Fatal("first probe refused")
	}
	if _, ok := b.Allow(now); ok {
		t.Fatal("second concurrent probe allowed")
	}
}

func TestStaleGenerationIgnored(t *testing.T) {
	b := New(Settings{Strategy: ConsecutiveErrors, Threshold: 1, OpenFor: time.Second})
	slowGen, _ := b.Allow(t0) // a call admitted while closed...
	gen, _ := b.Allow(t0)
	b.Record(gen, t0, true, false) // ...another trips the breaker
	now := t0.Add(time.Second)
	b.State(now) // half-open
	b.Record(slowGen, now, false, false)
	if got := b.State(now); got != HalfOpen {
		t.Errorf("a stale success changed the state to %s", got)
	}
}

func TestSlowCallRatioAndWindow(t *testing.T) {
	b := New(Settings{Strategy: SlowCallRatio, Threshold: 0.5, MinRequests: 2, Window: 10 * time.Second})
	runSteps(t, b, []step{
		{name: "slow", at: 0, call: true, slow: true, wantAllow: true, wantState: Closed},
		{name: "ok after the window slid", at: 20 * time.Second, call: true, wantAllow: true, wantState: Closed},
		{name: "ok", at: 20 * time.Second, call: true, wantAllow: true, wantState: Closed},
		{name: "slow: 1 of 3", at: 21 * time.Second, call: true, slow: true, wantAllow: true, wantState: Closed},
		{name: "slow: 2 of 4", at: 21 * time.Second, call: true, slow: true, wantAllow: true, wantState: Open},
	})
}

func BenchmarkAllowRecord(b *testing.B) {
	br := New(Settings{Threshold: 0.99, MinRequests: 1 << 30})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now := t0.Add(time.Duration(i) * time.Microsecond)
		gen, ok := br.Allow(now)
		if ok {
			br.Record(gen, now, i%10 == 0, false)
		}
	}
}

func TestReleaseFreesAHalfOpenProbe(t *testing.T) {
	b := New(Settings{Strategy: ConsecutiveErrors, Threshold: 1, OpenFor: time.Second, HalfOpenProbes: 1})
	gen, _ := b.Allow(t0)
	b.Record(gen, t0, true, false)
	at := t0.Add(2 * time.Second)
	gen, ok := b.Allow(at)
	if !ok {
		t.Fatalf("first half-open probe: got refused, want allowed")
	}
	if _, ok := b.Allow(at); ok {
		t.Fatalf("second probe while the first is out: got allowed, want refused")
	}
	b.Release(gen)
	gen, ok = b.Allow(at)
	if !ok {
		t.Fatalf("probe after release: got refused, want allowed")
	}
	b.Record(gen, at, false, false)
	if got := b.State(at); got != Closed {
		t.Errorf("state after a good probe: got %s, want closed", got)
	}
}
