package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"
)

// The writer runs with SQLite's automatic checkpoint off: an automatic
// checkpoint runs inside the committing transaction and fsyncs, which on a
// busy disk stalled ingest for tens of milliseconds. A checkpointer
// goroutine on its own connection copies the WAL into the database with
// PASSIVE checkpoints instead, which never block the writer or readers.
const (
	checkpointPoll     = 250 * time.Millisecond
	checkpointWALBytes = 16 << 20 // checkpoint when the WAL is larger
)

func (s *Store) openCheckpointer() error {
	db, err := sql.Open("sqlite", s.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("store: open checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return fmt.Errorf("store: open checkpointer: %w", err)
	}
	s.checkpointDB = db
	return nil
}

func (s *Store) runCheckpointer() {
	defer close(s.checkpointDone)
	t := time.NewTicker(checkpointPoll)
	defer t.Stop()
	for {
		select {
		case <-s.stopCheckpoint:
			return
		case <-t.C:
			fi, err := os.Stat(s.path + "-wal")
			if err != nil || fi.Size() < checkpointWALBytes {
				continue
			}
			if err := s.checkpoint(context.Background(), "PASSIVE"); err != nil {
				s.writeErrors.Add(1)
			}
		}
	}
}

// checkpoint runs PRAGMA wal_checkpoint in mode.
func (s *Store) checkpoint(ctx context.Context, mode string) error {
	var busy, logFrames, checkpointed int
	err := s.checkpointDB.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &logFrames, &checkpointed)
	if err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	return nil
}
