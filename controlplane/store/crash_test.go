package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// crashChildEnv switches TestKill9Durability into the child process that
// writes until it is killed.
const crashChildEnv = "PILOTHOUSE_STORE_CRASH_CHILD_DIR"

const (
	crashWriters = 4
	crashAcks    = 1000 // acknowledged batches before the parent kills the child
)

func TestKill9Durability(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Durability$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ack struct{ writer, batch int }
	var acked []ack
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var a ack
		if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &a.writer, &a.batch); err != nil {
			continue // test framework output
		}
		acked = append(acked, a)
		if len(acked) == crashAcks {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			break
		}
	}
	_ = cmd.Wait()
	if len(acked) < crashAcks {
		t.Fatalf("child stopped after %d acks, want %d", len(acked), crashAcks)
	}

	s := openTestStore(t, dir, Options{})
	var check string
	if err := s.readDB.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: got %q, %v, want ok", check, err)
	}
	for _, a := range acked {
		n := crashTraceNumber(a.writer, a.batch)
		spans, err := s.Trace(context.Background(), traceID(n))
		if err != nil || len(spans) != 7 {
			t.Errorf("acked batch %v: got %d spans, %v, want 7", a, len(spans), err)
		}
		logs, err := s.Logs(context.Background(), LogFilter{RequestID: fmt.Sprint("req-", n)})
		if err != nil || len(logs) != 2 {
			t.Errorf("acked batch %v: got %d logs, %v, want 2", a, len(logs), err)
		}
	}
	assertCounts(t, s)
	t.Logf("%d acknowledged batches survived kill -9; %d spans stored", len(acked), s.Stats().Spans)
}

func crashTraceNumber(writer, batch int) int { return writer*1_000_000 + batch }

// runCrashChild writes batches from several goroutines and prints one
// "ack <writer> <batch>" line after each batch's spans and logs are both
// acknowledged. It stops on its own after a while if nobody kills it.
func runCrashChild(dir string) {
	s, err := Open(dir, Options{RetentionInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Minute)
	for w := range crashWriters {
		wg.Go(func() {
			for b := 0; time.Now().Before(deadline); b++ {
				n := crashTraceNumber(w, b)
				rid := fmt.Sprint("req-", n)
				spans := shopTrace(n, time.Now(), rid, 200)
				logs := []LogRecord{
					{Time: time.Now(), Service: "gateway", Body: "in", RequestID: rid},
					{Time: time.Now(), Service: "orders", Body: "out", RequestID: rid},
				}
				retryBusy(func() error { return s.WriteSpans(context.Background(), spans) })
				retryBusy(func() error { return s.WriteLogs(context.Background(), logs) })
				mu.Lock()
				fmt.Printf("ack %d %d\n", w, b)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	_ = s.Close()
}

// retryBusy calls write until it is accepted; the child exits on any
// other error.
func retryBusy(write func() error) {
	for {
		err := write()
		if err == nil {
			return
		}
		if !errors.Is(err, ErrBusy) {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		time.Sleep(time.Millisecond) // back off like a client told 429
	}
}
