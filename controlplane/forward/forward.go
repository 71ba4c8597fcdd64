// Package forward is the bounded, dropping background queue shared by the
// control plane's forwarders (logs to Loki, spans to an OTLP backend):
// Enqueue never blocks ingest, one goroutine drains batches merged up to a
// size, failed sends are retried with backoff, and Close drains within a
// deadline. The callers own their metrics through the Drop hook.
package forward

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Drop reasons passed to Config.Drop by the queue itself.
const (
	DropQueueFull = "queue_full"
	DropClosed    = "closed"
)

// Config configures a Queue.
type Config[T any] struct {
	// Batches is how many enqueued batches may wait.
	Batches int
	// MaxItems caps the items handed to Send at once.
	MaxItems int
	// Send delivers items; ctx ends when Close gives up waiting.
	Send func(ctx context.Context, items []T)
	// Drop is told of items the queue refused, with the reason.
	Drop func(reason string, n int)
}

// Queue is safe for concurrent use.
type Queue[T any] struct {
	cfg Config[T]

	mu     sync.RWMutex
	closed bool
	ch     chan []T

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// New starts a queue; stop it with Close.
func New[T any](cfg Config[T]) *Queue[T] {
	q := &Queue[T]{cfg: cfg, ch: make(chan []T, max(1, cfg.Batches)), done: make(chan struct{})}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	go q.run()
	return q
}

// Len reports how many batches wait.
func (q *Queue[T]) Len() int { return len(q.ch) }

// Enqueue queues a copy of items and reports whether it fit; a batch that
// does not fit is dropped and reported. It never blocks.
func (q *Queue[T]) Enqueue(items []T) bool {
	if len(items) == 0 {
		return true
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.cfg.Drop(DropClosed, len(items))
		return false
	}
	select {
	case q.ch <- append([]T(nil), items...):
		return true
	default:
		q.cfg.Drop(DropQueueFull, len(items))
		return false
	}
}

// Close stops accepting items and sends what is queued until ctx ends;
// Send's context is then cancelled. It returns ctx's error if it gave up.
func (q *Queue[T]) Close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		q.cancel()
		<-q.done
		return fmt.Errorf("forward: close: %w", ctx.Err())
	}
}

// run sends queued batches, merging what is waiting up to MaxItems.
func (q *Queue[T]) run() {
	defer close(q.done)
	limit := max(1, q.cfg.MaxItems)
	for batch := range q.ch {
		pending := batch
	merge:
		for len(pending) < limit {
			select {
			case more, ok := <-q.ch:
				if !ok {
					break merge
				}
				pending = append(pending, more...)
			default:
				break merge
			}
		}
		for len(pending) > 0 {
			n := min(len(pending), limit)
			q.cfg.Send(q.ctx, pending[:n])
			pending = pending[n:]
		}
	}
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so Retry gives up at once.
func Permanent(err error) error { return permanent{err} }

// Retry calls try until it succeeds, fails with a Permanent error, has
// been retried retries times, or ctx ends, waiting backoff (doubling)
// between attempts. after, if set, sees every attempt's error (nil on
// success). It returns the last error.
func Retry(ctx context.Context, retries int, backoff time.Duration, try func() error, after func(error)) error {
	for attempt := 0; ; attempt++ {
		err := try()
		if after != nil {
			after(err)
		}
		var p permanent
		if err == nil || errors.As(err, &p) || attempt >= retries || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff *= 2
	}
}
