package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestBucketSteps(t *testing.T) {
	b := NewBucket(10, 2, t0) // 10/s, burst 2
	steps := []struct {
		name     string
		t        time.Time
		want     bool
		wantWait time.Duration
	}{
		{name: "burst 1", t: at(0), want: true},
		{name: "burst 2", t: at(0), want: true},
		{name: "empty", t: at(0), want: false, wantWait: 100 * time.Millisecond},
		{name: "half refilled", t: at(50 * time.Millisecond), want: false, wantWait: 50 * time.Millisecond},
		{name: "one refilled", t: at(100 * time.Millisecond), want: true},
		{name: "long idle caps at burst 1", t: at(10 * time.Second), want: true},
		{name: "long idle caps at burst 2", t: at(10 * time.Second), want: true},
		{name: "long idle caps at burst 3", t: at(10 * time.Second), want: false, wantWait: 100 * time.Millisecond},
		{name: "clock going back takes nothing", t: at(9 * time.Second), want: false, wantWait: 100 * time.Millisecond},
	}
	for _, s := range steps {
		ok, wait := b.AllowAt(s.t)
		if ok != s.want || wait != s.wantWait {
			t.Fatalf("%s: got (%v, %s), want (%v, %s)", s.name, ok, wait, s.want, s.wantWait)
		}
	}
}

func TestSetRateKeepsTokens(t *testing.T) {
	b := NewBucket(1, 5, t0)
	for i := 0; i < 3; i++ {
		b.AllowAt(t0)
	}
	b.SetRate(1, 10) // 2 tokens left, not refilled by the change
	allowed := 0
	for i := 0; i < 5; i++ {
		if ok, _ := b.AllowAt(t0); ok {
			allowed++
		}
	}
	if allowed != 2 {
		t.Errorf("got %d allowed after SetRate, want 2", allowed)
	}
}

func TestKeyedSeparatesKeys(t *testing.T) {
	k := NewKeyed(1, 1)
	if ok, _ := k.AllowAt("10.0.0.1", t0); !ok {
		t.Fatal("first request of key a refused")
	}
	if ok, _ := k.AllowAt("10.0.0.1", t0); ok {
		t.Fatal("second request of key a allowed")
	}
	if ok, _ := k.AllowAt("10.0.0.2", t0); !ok {
		t.Fatal("key b limited by key a")
	}
}

func TestKeyedBoundsMemory(t *testing.T) {
	k := NewKeyed(1, 1)
	for i := 0; i < 3*MaxKeys; i++ {
		k.AllowAt(fmt.Sprintf("ip-%d", i), t0.Add(time.Duration(i)))
	}
	if n := k.Len(); n > MaxKeys {
		t.Errorf("got %d keys, want at most %d", n, MaxKeys)
	}
}

func BenchmarkBucketAllow(b *testing.B) {
	bk := NewBucket(1e9, 1000, t0)
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		bk.AllowAt(now.Add(time.Duration(i)))
	}
}

func BenchmarkKeyedAllowParallel(b *testing.B) {
	k := NewKeyed(1e9, 1000)
	keys := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k.AllowAt(keys[i%len(keys)], t0.Add(time.Duration(i)))
			i++
		}
	})
}
