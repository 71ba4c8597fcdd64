package consul

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
)

// TestRunAsLeaderOneAtATime: of three replicas one leads; a waiting one
// stops at once when asked; when the leader stops, the last takes over;
// two never lead together.
func TestRunAsLeaderOneAtATime(t *testing.T) {
	srv := consultest.Start(t)
	var leading atomic.Int32
	var overlap atomic.Bool
	type replica struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	leaders := make(chan int, 8)
	replicas := make([]replica, 3)
	for i := range replicas {
		ctx, cancel := context.WithCancel(context.Background())
		r := replica{cancel: cancel, done: make(chan struct{})}
		replicas[i] = r
		go func() {
			defer close(r.done)
			cfg := LeaderConfig{Address: srv.Addr, Key: "pilothouse/test-leader", RetryWait: 50 * time.Millisecond}
			err := RunAsLeader(ctx, cfg, func(ctx context.Context) {
				if leading.Add(1) > 1 {
					overlap.Store(true)
				}
				leaders <- i
				<-ctx.Done()
				leading.Add(-1)
			})
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}()
	}
	t.Cleanup(func() {
		for _, r := range replicas {
			r.cancel()
			<-r.done
		}
	})
	stop := func(i int) {
		t.Helper()
		replicas[i].cancel()
		select {
		case <-replicas[i].done:
		case <-time.After(10 * time.Second):
			t.Fatalf("replica %d did not stop", i)
		}
	}
	next := func(what string) int {
		t.Helper()
		select {
		case i := <-leaders:
			return i
		case <-time.After(15 * time.Second):
			t.Fatalf("no %s leader", what)
			return -1
		}
	}

	first := next("first")
	waiting := (first + 1) % len(replicas)
	stop(waiting)
	stop(first)
	last := next("second")
	if last == first || last == waiting {
		t.Fatalf("got leader %d, want the replica still running", last)
	}
	stop(last)
	if overlap.Load() {
		t.Error("two replicas led at once")
	}
}
