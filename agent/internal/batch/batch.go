// Package batch moves items from a bounded, non-blocking queue to an export
// function in batches, off the caller's path. Producers never block: when
// the queue is full the item is dropped and counted. A single background
// goroutine exports when a batch is ready or the flush interval passes, and
// on Flush and Close; it is woken once per batch, not once per item.
package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("batch: queue closed")

// ExportFunc sends one batch. It must not keep items after it returns.
// An error means the whole batch is lost: it is counted as dropped.
type ExportFunc[T any] func(ctx context.Context, items []T) error

// Settings of a Queue. A zero field means the default.
type Settings struct {
	// Size bounds the number of queued items (default 2048).
	Size int
	// BatchSize is the most items handed to one export (default 512).
	BatchSize int
	// Interval is how long an item may wait for a full batch (default 1s).
	Interval time.Duration
}

// Stats are cumulative counters of a Queue.
type Stats struct {
	Exported uint64
	Dropped  uint64
	// Errors counts failed exports (each failed export drops its batch).
	Errors uint64
	// Queued is the number of items waiting now.
	Queued int
}

// Queue is a bounded export queue. Offer is safe for concurrent use.
type Queue[T any] struct {
	ch       chan T
	batch    int
	interval time.Duration
	export   ExportFunc[T]

	requests chan request
	full     chan struct{} // a batch is waiting; capacity 1
	quit     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	start    sync.Once
	stop     sync.Once
	closed   atomic.Bool

	exported atomic.Uint64
	dropped  atomic.Uint64
	errors   atomic.Uint64
}

type request struct {
	ctx   context.Context
	final bool
	done  chan struct{}
}

// New returns a queue that is not yet running; call Start.
func New[T any](s Settings, export ExportFunc[T]) *Queue[T] {
	if s.Size <= 0 {
		s.Size = 2048
	}
	if s.BatchSize <= 0 {
		s.BatchSize = 512
	}
	if s.Interval <= 0 {
		s.Interval = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Queue[T]{
		ch:       make(chan T, s.Size),
		batch:    s.BatchSize,
		interval: s.Interval,
		export:   export,
		requests: make(chan request),
		full:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
}

// Offer queues item without blocking. It reports false, and counts a drop,
// when the queue is full or closed.
func (q *Queue[T]) Offer(item T) bool {
	if q.closed.Load() {
		q.dropped.Add(1)
		return false
	}
	select {
	case q.ch <- item:
		// The exporter is not parked on the channel (that would cost a
		// goroutine wake-up per item); it is told once a batch is ready.
		if len(q.ch) >= q.batch {
			select {
			case q.full <- struct{}{}:
			default:
			}
		}
		return true
	default:
		q.dropped.Add(1)
		return false
	}
}

// Stats returns the queue's counters.
func (q *Queue[T]) Stats() Stats {
	return Stats{
		Exported: q.exported.Load(),
		Dropped:  q.dropped.Load(),
		Errors:   q.errors.Load(),
		Queued:   len(q.ch),
	}
}

// Start runs the background exporter. Calling it more than once is a no-op.
func (q *Queue[T]) Start() {
	q.start.Do(func() { go q.run() })
}

// Flush exports everything queued so far and waits for it, or for ctx.
func (q *Queue[T]) Flush(ctx context.Context) error {
	return q.send(ctx, false)
}

// Close stops accepting items, exports what is queued within ctx and stops
// the background goroutine. If ctx ends first the export in progress is
// cancelled and the rest is dropped.
func (q *Queue[T]) Close(ctx context.Context) error {
	var err error
	q.stop.Do(func() {
		q.closed.Store(true)
		q.Start()
		err = q.send(ctx, true)
		if err != nil {
			q.cancel()
			close(q.quit)
			<-q.done
		}
		q.cancel()
	})
	return err
}

func (q *Queue[T]) send(ctx context.Context, final bool) error {
	r := request{ctx: ctx, final: final, done: make(chan struct{})}
	select {
	case q.requests <- r:
	case <-q.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
		// If ctx ended while draining, part of the queue was dropped.
		return ctx.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *Queue[T]) run() {
	defer close(q.done)
	ticker := time.NewTicker(q.interval)
	defer ticker.Stop()
	buf := make([]T, 0, q.batch)
	for {
		select {
		case <-q.full:
			buf = q.drain(q.ctx, buf)
		case <-ticker.C:
			buf = q.drain(q.ctx, buf)
		case <-q.quit:
			q.dropped.Add(uint64(len(buf)))
			q.dropRest()
			return
		case r := <-q.requests:
			ctx, stop := q.merge(r.ctx)
			buf = q.drain(ctx, buf)
			stop()
			close(r.done)
			if r.final {
				q.dropRest()
				return
			}
		}
	}
}

// drain exports everything in the channel and buf.
func (q *Queue[T]) drain(ctx context.Context, buf []T) []T {
	for {
		select {
		case item := <-q.ch:
			buf = append(buf, item)
			if len(buf) >= q.batch {
				buf = q.flush(ctx, buf)
			}
		default:
			if len(buf) > 0 {
				buf = q.flush(ctx, buf)
			}
			return buf
		}
	}
}

// dropRest counts items that arrived after the final drain.
func (q *Queue[T]) dropRest() {
	for {
		select {
		case <-q.ch:
			q.dropped.Add(1)
		default:
			return
		}
	}
}

func (q *Queue[T]) flush(ctx context.Context, buf []T) []T {
	n := uint64(len(buf))
	if ctx.Err() != nil {
		q.dropped.Add(n)
	} else if err := q.export(ctx, buf); err != nil {
		q.errors.Add(1)
		q.dropped.Add(n)
	} else {
		q.exported.Add(n)
	}
	clear(buf)
	return buf[:0]
}

// merge returns a context that ends when either the queue's or ctx ends.
func (q *Queue[T]) merge(ctx context.Context) (context.Context, context.CancelFunc) {
	merged, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(q.ctx, cancel)
	return merged, func() { stop(); cancel() }
}
