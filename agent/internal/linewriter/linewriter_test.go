package linewriter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to read while the writer writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	n   int // Write calls
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLinesArriveInOrderAfterFlush(t *testing.T) {
	var out syncBuffer
	w := New(&out, 0, time.Hour) // only Flush writes
	defer w.Close(context.Background())
	var want strings.Builder
	for i := range 100 {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if !w.WriteLine([]byte(line)) {
			t.Fatalf("line %d dropped", i)
		}
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != want.String() {
		t.Fatalf("got %q, want %q", got, want.String())
	}
	if w.Written() != 100 || w.Dropped() != 0 {
		t.Fatalf("written %d dropped %d, want 100 and 0", w.Written(), w.Dropped())
	}
}

func TestLingerWritesOneBatchWithoutFlush(t *testing.T) {
	var out syncBuffer
	w := New(&out, 0, 20*time.Millisecond)
	defer w.Close(context.Background())
	for range 10 {
		w.WriteLine([]byte("x\n"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != strings.Repeat("x\n", 10) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s the writer has %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	out.mu.Lock()
	calls := out.n
	out.mu.Unlock()
	if calls != 1 {
		t.Fatalf("10 lines within the linger took %d writes, want 1", calls)
	}
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
	out     syncBuffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.started) })
	<-b.release
	return b.out.Write(p)
}

func TestStuckWriterNeitherBlocksNorGrowsWithoutBound(t *testing.T) {
	bw := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	w := New(bw, 64, time.Millisecond)
	w.WriteLine([]byte("first line\n"))
	<-bw.started // the writer is now stuck inside Write with the first line

	line := []byte("0123456789abcde\n") // 16 bytes: four fit in 64
	accepted := 0
	for range 1000 { // returns at once although the writer is stuck
		if w.WriteLine(line) {
			accepted++
		}
	}
	if accepted != 4 {
		t.Fatalf("accepted %d lines into a 64-byte buffer, want 4", accepted)
	}
	if w.Dropped() != 996 {
		t.Fatalf("dropped %d, want 996", w.Dropped())
	}
	close(bw.release)
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := bw.out.String(), "first line\n"+strings.Repeat(string(line), 4); got != want {
		t.Fatalf("wrote %q, want %q", got, want)
	}
	if w.Written() != 5 {
		t.Fatalf("written %d, want 5", w.Written())
	}
}

func TestCloseWritesPendingThenLaterLinesDirectly(t *testing.T) {
	var out syncBuffer
	w := New(&out, 0, time.Hour)
	w.WriteLine([]byte("before\n"))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "before\n" {
		t.Fatalf("got %q, want the line queued before Close", got)
	}
	if !w.WriteLine([]byte("after\n")) || !w.WriteLineNow([]byte("last\n")) {
		t.Fatal("a line after Close was refused")
	}
	if got := out.String(); got != "before\nafter\nlast\n" {
		t.Fatalf("got %q, want the lines after Close written at once", got)
	}
	if w.Written() != 3 || w.Dropped() != 0 {
		t.Fatalf("written %d dropped %d, want 3 and 0", w.Written(), w.Dropped())
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after Close: %v", err)
	}
}

func TestCloseGivesUpWithItsContext(t *testing.T) {
	bw := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	defer close(bw.release)
	w := New(bw, 0, time.Millisecond)
	w.WriteLine([]byte("stuck\n"))
	<-bw.started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a stuck writer: %v, want the context's deadline", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFailedWriteCountsItsLinesAsDropped(t *testing.T) {
	w := New(failingWriter{}, 0, time.Hour)
	defer w.Close(context.Background())
	for range 3 {
		w.WriteLine([]byte("x\n"))
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.Dropped() != 3 || w.Written() != 0 {
		t.Fatalf("dropped %d written %d, want 3 and 0", w.Dropped(), w.Written())
	}
}

func TestConcurrentWritersKeepLinesWhole(t *testing.T) {
	var out syncBuffer
	w := New(&out, 0, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				w.WriteLine(fmt.Appendf(nil, "g%d-%03d\n", g, i))
			}
		})
	}
	wg.Wait()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2000 {
		t.Fatalf("got %d lines, want 2000", len(lines))
	}
	next := map[byte]int{}
	for _, l := range lines {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d-%03d", &g, &i); err != nil {
			t.Fatalf("torn line %q", l)
		}
		if i != next[byte(g)] {
			t.Fatalf("writer %d: line %d after %d, want order kept", g, i, next[byte(g)]-1)
		}
		next[byte(g)]++
	}
}

func TestWriteLineNowSkipsTheLinger(t *testing.T) {
	var out syncBuffer
	w := New(&out, 0, time.Hour) // WriteLine alone would wait an hour
	defer w.Close(context.Background())
	w.WriteLine([]byte("info\n"))
	w.WriteLineNow([]byte("error\n"))
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "info\nerror\n" {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s the writer has %q, want both lines at once", out.String())
		}
		time.Sleep(time.Millisecond)
	}
}
