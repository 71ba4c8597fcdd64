package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRetentionByAge(t *testing.T) {
	tests := []struct {
		name        string
		maxAge      time.Duration
		wantOld     bool
		wantDeleted int64
	}{
		{"older than max age deleted", time.Hour, false, 8},
		{"negative keeps forever", -1, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0.Add(3 * time.Hour)
			s := openTestStore(t, t.TempDir(), Options{MaxAge: tt.maxAge, MaxBytes: -1, Now: func() time.Time { return now }})
			mustWriteSpans(t, s, shopTrace(0, now.Add(-2*time.Hour), "old", 200))
			mustWriteSpans(t, s, shopTrace(1, now.Add(-30*time.Minute), "new", 200))
			mustWriteLogs(t, s, []LogRecord{
				{Time: now.Add(-2 * time.Hour), Body: "old", RequestID: "old"},
				{Time: now.Add(-30 * time.Minute), Body: "new", RequestID: "new"},
			})
			if err := s.RunRetention(now); err != nil {
				t.Fatalf("RunRetention: %v", err)
			}
			_, err := s.Trace(context.Background(), traceID(0))
			if gotOld := err == nil; gotOld != tt.wantOld {
				t.Errorf("old trace kept: got %v (%v), want %v", gotOld, err, tt.wantOld)
			}
			if tt.wantOld == false && !errors.Is(err, ErrNotFound) {
				t.Errorf("old trace: got %v, want ErrNotFound", err)
			}
			if _, err := s.Trace(context.Background(), traceID(1)); err != nil {
				t.Errorf("new trace: got %v, want it kept", err)
			}
			logs, _ := s.Logs(context.Background(), LogFilter{RequestID: "old"})
			if gotOld := len(logs) == 1; gotOld != tt.wantOld {
				t.Errorf("old log kept: got %v, want %v", gotOld, tt.wantOld)
			}
			st := s.Stats()
			if st.Deleted != tt.wantDeleted {
				t.Errorf("Stats.Deleted: got %d, want %d", st.Deleted, tt.wantDeleted)
			}
			assertCounts(t, s)
		})
	}
}

func TestRetentionBySize(t *testing.T) {
	const maxBytes = 1 << 20
	s := openTestStore(t, t.TempDir(), Options{MaxAge: -1, MaxBytes: maxBytes})
	pad := strings.Repeat("x", 400)
	const traces = 1500 // about 6 MB of spans and logs, one trace a second
	for n := 0; n < traces; n += 50 {
		var spans []Span
		var logs []LogRecord
		for i := n; i < n+50; i++ {
			at := t0.Add(time.Duration(i) * time.Second)
			tr := shopTrace(i, at, "", 200)
			for j := range tr {
				tr[j].Attributes["pad"] = pad
			}
			spans = append(spans, tr...)
			logs = append(logs, LogRecord{Time: at, Service: "gateway", Body: pad, TraceID: traceID(i)})
		}
		mustWriteSpans(t, s, spans)
		mustWriteLogs(t, s, logs)
	}
	if err := s.RunRetention(t0.Add(traces * time.Second)); err != nil {
		t.Fatalf("RunRetention: %v", err)
	}
	used, err := s.w.usedBytes(context.Background()) // the writer is idle here
	if err != nil {
		t.Fatal(err)
	}
	if used > maxBytes {
		t.Errorf("used bytes after retention: got %d, want <= %d", used, maxBytes)
	}
	if _, err := s.Trace(context.Background(), traceID(0)); !errors.Is(err, ErrNotFound) {
		t.Errorf("oldest trace: got %v, want ErrNotFound", err)
	}
	if _, err := s.Trace(context.Background(), traceID(traces-1)); err != nil {
		t.Errorf("newest trace: got %v, want it kept", err)
	}
	if st := s.Stats(); st.Deleted == 0 {
		t.Errorf("Stats.Deleted: got 0, want > 0")
	}
	assertCounts(t, s)

	// A second run with nothing to do deletes nothing.
	before := s.Stats().Deleted
	if err := s.RunRetention(t0.Add(traces * time.Second)); err != nil {
		t.Fatalf("RunRetention: %v", err)
	}
	if after := s.Stats().Deleted; after != before {
		t.Errorf("second run deleted %d rows, want 0", after-before)
	}
}

// assertCounts checks the kept counters against COUNT(*).
func assertCounts(t *testing.T, s *Store) {
	t.Helper()
	st := s.Stats()
	for _, c := range []struct {
		table string
		got   int64
	}{{"spans", st.Spans}, {"logs", st.Logs}, {"traces", st.Traces}} {
		var want int64
		if err := s.readDB.QueryRow("SELECT COUNT(*) FROM " + c.table).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if c.got != want {
			t.Errorf("Stats count of %s: got %d, want %d", c.table, c.got, want)
		}
	}
}
