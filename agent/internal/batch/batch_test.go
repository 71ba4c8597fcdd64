package batch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu      sync.Mutex
	batches [][]int
	err     error
}

func (r *recorder) export(_ context.Context, items []int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, append([]int(nil), items...))
	return r.err
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.batches {
		n += len(b)
	}
	return n
}

func TestOfferDropsWhenFull(t *testing.T) {
	tests := []struct {
		name        string
		size, offer int
		wantDropped uint64
	}{
		{name: "fits", size: 4, offer: 4, wantDropped: 0},
		{name: "overflow", size: 2, offer: 5, wantDropped: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			q := New(Settings{Size: tt.size}, rec.export) // not started: nothing drains
			for i := range tt.offer {
				q.Offer(i)
			}
			if got := q.Stats().Dropped; got != tt.wantDropped {
				t.Errorf("dropped: got %d, want %d", got, tt.wantDropped)
			}
			if err := q.Close(context.Background()); err != nil {
				t.Fatalf("close: got %v, want nil", err)
			}
			if got, want := rec.total(), tt.offer-int(tt.wantDropped); got != want {
				t.Errorf("exported on close: got %d, want %d", got, want)
			}
		})
	}
}

func TestFlushBatches(t *testing.T) {
	rec := &recorder{}
	q := New(Settings{Size: 100, BatchSize: 3, Interval: time.Hour}, rec.export)
	q.Start()
	for i := range 7 {
		q.Offer(i)
	}
	if err := q.Flush(context.Background()); err != nil {
		t.Fatalf("flush: got %v, want nil", err)
	}
	if got := rec.total(); got != 7 {
		t.Errorf("exported: got %d, want 7", got)
	}
	for i, b := range rec.batches {
		if len(b) > 3 {
			t.Errorf("batch %d: got %d items, want <= 3", i, len(b))
		}
	}
	if got := q.Stats().Exported; got != 7 {
		t.Errorf("stats exported: got %d, want 7", got)
	}
	if err := q.Close(context.Background()); err != nil {
		t.Fatalf("close: got %v, want nil", err)
	}
	if q.Offer(1) {
		t.Errorf("offer after close: got true, want false")
	}
	if err := q.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("flush after close: got %v, want ErrClosed", err)
	}
}

func TestExportErrorDropsBatch(t *testing.T) {
	rec := &recorder{err: errors.New("down")}
	q := New(Settings{Size: 10}, rec.export)
	q.Start()
	q.Offer(1)
	q.Offer(2)
	if err := q.Close(context.Background()); err != nil {
		t.Fatalf("close: got %v, want nil", err)
	}
	st := q.Stats()
	if st.Errors != 1 || st.Dropped != 2 || st.Exported != 0 {
		t.Errorf("stats: got %+v, want 1 error, 2 dropped, 0 exported", st)
	}
}

func TestCloseGivesUpOnBlockedExport(t *testing.T) {
	started := make(chan struct{})
	q := New(Settings{Size: 10}, func(ctx context.Context, _ []int) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	q.Start()
	q.Offer(1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	if err := q.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("close: got %v, want context.Canceled", err)
	}
	if got := q.Stats().Dropped; got != 1 {
		t.Errorf("dropped: got %d, want 1", got)
	}
}

func BenchmarkOffer(b *testing.B) {
	b.ReportAllocs()
	q := New(Settings{Size: 4096}, func(context.Context, []int) error { return nil })
	q.Start()
	defer q.Close(context.Background())
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			q.Offer(1)
		}
	})
}
