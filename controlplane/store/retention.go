package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// retentionJob asks the writer goroutine, which owns the only write
// connection, to apply retention.
type retentionJob struct {
	now  time.Time
	done chan error
}

// RunRetention deletes data older than MaxAge before now and, when the
// data in the database exceeds MaxBytes, the oldest time slices until it
// is under 90% of MaxBytes. It runs on the writer goroutine in small
// transactions, committing waiting writes between them, and returns when
// done. The background job calls it every RetentionInterval with
// Options.Now; tests call it directly.
//
// Deleted pages are reused by later writes, so the file stops growing
// rather than shrinking.
func (s *Store) RunRetention(now time.Time) error {
	job := retentionJob{now: now, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	// The writer is running until Close, which cannot start while we hold
	// the read lock, so this send completes.
	s.jobs <- job
	s.mu.RUnlock()
	return <-job.done
}

func (s *Store) runRetention() {
	defer close(s.retentionDone)
	t := time.NewTicker(s.opts.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopRetention:
			return
		case <-t.C:
			if err := s.RunRetention(s.opts.Now()); err != nil && !errors.Is(err, ErrClosed) {
				s.writeErrors.Add(1)
			}
		}
	}
}

// retain runs on the writer goroutine.
func (s *Store) retain(now time.Time) error {
	ctx := context.Background()
	if s.opts.MaxAge > 0 {
		if _, err := s.deleteBefore(ctx, now.Add(-s.opts.MaxAge).UnixNano()); err != nil {
			return err
		}
	}
	if s.opts.MaxBytes <= 0 {
		return nil
	}
	target := s.opts.MaxBytes - s.opts.MaxBytes/10
	for {
		used, err := s.w.usedBytes(ctx)
		if err != nil {
			return err
		}
		if used <= s.opts.MaxBytes && !(s.sizeTrimming && used > target) {
			s.sizeTrimming = false
			return nil
		}
		s.sizeTrimming = true
		oldest, newest, ok, err := s.w.timeRange(ctx)
		if err != nil {
			return err
		}
		if !ok {
			s.sizeTrimming = false
			return nil
		}
		step := max((newest-oldest)/sizeSlices, int64(time.Second))
		n, err := s.deleteBefore(ctx, oldest+step)
		if err != nil {
			return err
		}
		if n == 0 && oldest+step > newest {
			s.sizeTrimming = false
			return nil
		}
	}
}

// sizeSlices is how many slices the stored time range is cut into when
// trimming by size: each round deletes the oldest slice.
const sizeSlices = 20

// deleteBefore deletes traces (with their spans) that started before
// cutoffNs and logs older than cutoffNs, in chunks. It returns the number of
// span and log rows deleted.
func (s *Store) deleteBefore(ctx context.Context, cutoffNs int64) (int64, error) {
	var total int64
	traceChunk := retentionChunkRows / 8
	for {
		n, err := s.w.deleteChunk(ctx, cutoffNs, traceChunk, retentionChunkRows)
		if err != nil {
			return total, err
		}
		s.spans.Add(-n.spans)
		s.traces.Add(-n.traces)
		s.logs.Add(-n.logs)
		s.deleted.Add(n.spans + n.logs)
		total += n.spans + n.logs
		if n.traces == 0 && n.logs == 0 {
			return total, nil
		}
		s.flushPending()
	}
}

// deleteChunk deletes at most traceChunk traces and logChunk logs older
// than cutoffNs in one transaction.
func (w *writer) deleteChunk(ctx context.Context, cutoffNs int64, traceChunk, logChunk int) (n commitResult, err error) {
	defer func() {
		// Cached traces may be among the deleted ones.
		if err != nil || n.traces > 0 || n.spans > 0 {
			w.cache.reset()
		}
	}()
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return n, fmt.Errorf("store: retention: %w", err)
	}
	steps := []struct {
		count *int64
		query string
		limit int
	}{
		{&n.spans, `DELETE FROM spans WHERE trace_key IN
			(SELECT id FROM traces WHERE start_ns < ? ORDER BY start_ns LIMIT ?)`, traceChunk},
		{&n.traces, `DELETE FROM traces WHERE id IN
			(SELECT id FROM traces WHERE start_ns < ? ORDER BY start_ns LIMIT ?)`, traceChunk},
		{&n.logs, `DELETE FROM logs WHERE seq IN
			(SELECT seq FROM logs WHERE time_ns < ? ORDER BY time_ns LIMIT ?)`, logChunk},
	}
	for _, st := range steps {
		res, err := w.conn.ExecContext(ctx, st.query, cutoffNs, st.limit)
		if err != nil {
			_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
			return commitResult{}, fmt.Errorf("store: retention: %w", err)
		}
		*st.count, _ = res.RowsAffected()
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
		return commitResult{}, fmt.Errorf("store: retention: %w", err)
	}
	return n, nil
}

// usedBytes is the size of the pages holding data: freed pages are
// reused, so this, not the file size, is what retention controls.
func (w *writer) usedBytes(ctx context.Context) (int64, error) {
	var pages, free, size int64
	for _, q := range []struct {
		pragma string
		dst    *int64
	}{{"page_count", &pages}, {"freelist_count", &free}, {"page_size", &size}} {
		if err := w.conn.QueryRowContext(ctx, "PRAGMA "+q.pragma).Scan(q.dst); err != nil {
			return 0, fmt.Errorf("store: retention: %w", err)
		}
	}
	return (pages - free) * size, nil
}

// timeRange returns the oldest and newest stored times (trace starts and
// log times); ok is false when the store is empty.
func (w *writer) timeRange(ctx context.Context) (oldest, newest int64, ok bool, err error) {
	var lo, hi *int64
	err = w.conn.QueryRowContext(ctx, `SELECT MIN(lo), MAX(hi) FROM (
		SELECT MIN(start_ns) AS lo, MAX(start_ns) AS hi FROM traces
		UNION ALL SELECT MIN(time_ns), MAX(time_ns) FROM logs)`).Scan(&lo, &hi)
	if err != nil {
		return 0, 0, false, fmt.Errorf("store: retention: %w", err)
	}
	if lo == nil || hi == nil {
		return 0, 0, false, nil
	}
	return *lo, *hi, true, nil
}
