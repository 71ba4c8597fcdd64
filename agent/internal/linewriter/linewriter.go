// Package linewriter writes lines to an io.Writer from one background
// goroutine, so that the goroutines that log never wait on the writer: a
// terminal, a pipe whose reader is slow or a full disk. Lines are copied
// into a bounded buffer; when it is full a line is dropped and counted.
// The writer runs a little after the first line of a batch (so that lines
// logged close together go out in one write) or as soon as a batch is
// large, and never when nothing was logged. After Close, lines are written
// directly: the program is on its way out.
package linewriter

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultLimit bounds the bytes waiting to be written.
	DefaultLimit = 256 << 10
	// DefaultLinger is how long the first line of a batch may wait for
	// others before the batch is written.
	DefaultLinger = 10 * time.Millisecond
)

// Writer is safe for concurrent use.
type Writer struct {
	w       io.Writer
	limit   int
	flushAt int
	linger  time.Duration

	// writeMu serialises writes to w: the goroutine's, and the direct
	// ones of lines logged after Close.
	writeMu sync.Mutex

	mu      sync.Mutex
	pending []byte
	lines   int // lines in pending
	closed  bool

	wake    chan struct{} // capacity 1: a batch started, or grew large
	urgent  chan struct{} // capacity 1: write now, without the linger
	flushes chan chan struct{}
	quit    chan struct{}
	done    chan struct{}

	written atomic.Uint64
	dropped atomic.Uint64
}

// New returns a Writer that writes to w and starts its goroutine; Close
// stops it. limit <= 0 and linger <= 0 mean the defaults.
func New(w io.Writer, limit int, linger time.Duration) *Writer {
	if limit <= 0 {
		limit = DefaultLimit
	}
	if linger <= 0 {
		linger = DefaultLinger
	}
	lw := &Writer{
		w:       w,
		limit:   limit,
		flushAt: max(limit/4, 1),
		linger:  linger,
		wake:    make(chan struct{}, 1),
		urgent:  make(chan struct{}, 1),
		flushes: make(chan chan struct{}),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go lw.run()
	return lw
}

// WriteLine queues a copy of line (which should end in a newline). It
// never blocks on the writer; it reports false, and counts a drop, when
// the buffer has no room. After Close, lines are written at once, on the
// caller's goroutine (a program's last words after its agent shut down).
func (w *Writer) WriteLine(line []byte) bool {
	return w.add(line, w.wake)
}

// WriteLineNow is WriteLine for a line worth the latency of a write of its
// own (an error, say, that may be the last line before the process
// exits): the writer writes it, with whatever is waiting, without
// lingering. It does not wait for the write either.
func (w *Writer) WriteLineNow(line []byte) bool {
	return w.add(line, w.urgent)
}

// add queues line and, when a write should start, signals on wake.
func (w *Writer) add(line []byte, wake chan struct{}) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.writeMu.Lock()
		_, err := w.w.Write(line)
		w.writeMu.Unlock()
		w.count(1, err)
		return err == nil
	}
	n := len(w.pending)
	if n+len(line) > w.limit {
		w.mu.Unlock()
		w.dropped.Add(1)
		return false
	}
	if w.pending == nil {
		// Both buffers are allocated once, at full size, so that
		// appending never reallocates.
		w.pending = make([]byte, 0, w.limit)
	}
	w.pending = append(w.pending, line...)
	w.lines++
	signal := wake == w.urgent || n == 0 || (n < w.flushAt && n+len(line) >= w.flushAt)
	w.mu.Unlock()
	if signal {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	return true
}

// Written is the number of lines the writer accepted.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Dropped is the number of lines lost: no room, closed, or the writer
// failed.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Flush returns once every line queued before it has been written, or
// when ctx is done.
func (w *Writer) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case w.flushes <- done:
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued and stops the goroutine. Lines written
// after Close are written directly. It returns ctx's error if ctx ends first; the
// goroutine still finishes its last write.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		close(w.quit)
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) run() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var spare []byte
	for {
		select {
		case <-w.wake:
			// Let the batch gather, unless it is already large.
			timer.Reset(w.linger)
			select {
			case <-timer.C:
			case <-w.wake:
				timer.Stop()
			case <-w.urgent:
				timer.Stop()
			case done := <-w.flushes:
				timer.Stop()
				spare = w.write(spare)
				close(done)
				continue
			case <-w.quit:
				timer.Stop()
				w.write(spare)
				return
			}
			spare = w.write(spare)
		case <-w.urgent:
			spare = w.write(spare)
		case done := <-w.flushes:
			spare = w.write(spare)
			close(done)
		case <-w.quit:
			w.write(spare)
			return
		}
	}
}

// write swaps the pending lines for spare and writes them; it returns the
// buffer to use as spare next time.
func (w *Writer) write(spare []byte) []byte {
	if spare == nil {
		spare = make([]byte, 0, w.limit)
	}
	w.mu.Lock()
	batch, lines := w.pending, w.lines
	w.pending, w.lines = spare[:0], 0
	w.mu.Unlock()
	if lines == 0 {
		return batch
	}
	w.writeMu.Lock()
	_, err := w.w.Write(batch)
	w.writeMu.Unlock()
	w.count(lines, err)
	return batch
}

// count adds lines to the written or, if err, the dropped counter.
func (w *Writer) count(lines int, err error) {
	if err != nil {
		w.dropped.Add(uint64(lines))
	} else {
		w.written.Add(uint64(lines))
	}
}
