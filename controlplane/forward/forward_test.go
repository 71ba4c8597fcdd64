package forward

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestQueueMergesAndDrains(t *testing.T) {
	var mu sync.Mutex
	var sent [][]int
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	q := New(Config[int]{Batches: 4, MaxItems: 3,
		Send: func(ctx context.Context, items []int) {
			started <- struct{}{}
			<-release
			mu.Lock()
			sent = append(sent, append([]int(nil), items...))
			mu.Unlock()
		},
		Drop: func(string, int) {}})
	q.Enqueue([]int{1})
	<-started // the sender holds it and waits on release
	q.Enqueue([]int{2, 3})
	q.Enqueue([]int{4, 5})
	close(release)
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var total int
	for _, b := range sent {
		if len(b) > 3 {
			t.Errorf("batch %v larger than MaxItems 3", b)
		}
		total += len(b)
	}
	if total != 5 {
		t.Errorf("sent %d items (%v), want 5", total, sent)
	}
}

func TestQueueDropsWhenFullAndClosed(t *testing.T) {
	drops := map[string]int{}
	var mu sync.Mutex
	started := make(chan struct{}, 8)
	q := New(Config[int]{Batches: 1, MaxItems: 10,
		Send: func(ctx context.Context, items []int) {
			started <- struct{}{}
			<-ctx.Done()
		},
		Drop: func(reason string, n int) { mu.Lock(); drops[reason] += n; mu.Unlock() }})
	q.Enqueue([]int{1})
	<-started // the sender holds the first batch
	q.Enqueue([]int{2})
	if q.Enqueue([]int{3, 4}) {
		t.Error("enqueue into a full queue succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close of a stuck queue: got %v, want DeadlineExceeded", err)
	}
	if q.Enqueue([]int{5}) {
		t.Error("enqueue after close succeeded")
	}
	if drops[DropQueueFull] != 2 || drops[DropClosed] != 1 {
		t.Errorf("drops: got %v, want queue_full=2 closed=1", drops)
	}
}

func TestRetry(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		errs      []error
		retries   int
		wantCalls int
		wantErr   error
	}{
		{name: "first try", errs: []error{nil}, retries: 3, wantCalls: 1},
		{name: "succeeds on retry", errs: []error{boom, boom, nil}, retries: 3, wantCalls: 3},
		{name: "gives up", errs: []error{boom, boom, boom}, retries: 2, wantCalls: 3, wantErr: boom},
		{name: "permanent", errs: []error{Permanent(boom)}, retries: 3, wantCalls: 1, wantErr: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, seen := 0, 0
			err := Retry(context.Background(), tt.retries, time.Microsecond, func() error {
				calls++
				return tt.errs[calls-1]
			}, func(error) { seen++ })
			if calls != tt.wantCalls || seen != calls {
				t.Errorf("got %d calls (%d seen), want %d", calls, seen, tt.wantCalls)
			}
			if !errors.Is(err, tt.wantErr) && !(err == nil && tt.wantErr == nil) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}
