package store

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaVersion is stored in PRAGMA user_version.
const schemaVersion = 1

// Schema notes (chosen on measurement, see bench_test.go):
//   - IDs are BLOBs (16/8 bytes) rather than hex TEXT: half the index size.
//   - spans do not repeat the trace ID; they point at their traces row by
//     trace_key. Trace keys grow with arrival time, so the one spans index
//     (trace_key, span_id) is appended to near its end, and it also makes a
//     re-sent span a no-op (INSERT OR IGNORE).
//   - empty request/trace IDs are stored as NULL and the indexes on them are
//     partial, so rows without them cost no index entry. A query term
//     "x = ?" implies "x IS NOT NULL", so SQLite uses the partial index.
//   - secondary indexes end with the rowid, so (request_id, time_ns) already
//     orders by (time_ns, seq) for the newest-first log queries.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS traces (
		id            INTEGER PRIMARY KEY,
		trace_id      BLOB    NOT NULL UNIQUE,
		start_ns      INTEGER NOT NULL,
		end_ns        INTEGER NOT NULL,
		span_count    INTEGER NOT NULL,
		error_count   INTEGER NOT NULL,
		services      TEXT    NOT NULL,
		has_root      INTEGER NOT NULL,
		root_start_ns INTEGER NOT NULL,
		root_service  TEXT    NOT NULL,
		root_name     TEXT    NOT NULL,
		route         TEXT,
		http_status   INTEGER NOT NULL,
		request_id    TEXT
	)`,
	`CREATE INDEX IF NOT EXISTS traces_start ON traces(start_ns)`,
	`CREATE INDEX IF NOT EXISTS traces_request ON traces(request_id) WHERE request_id IS NOT NULL`,
	`CREATE TABLE IF NOT EXISTS spans (
		trace_key   INTEGER NOT NULL,
		span_id     BLOB    NOT NULL,
		parent_id   BLOB,
		service     TEXT    NOT NULL,
		instance    TEXT,
		name        TEXT    NOT NULL,
		kind        TEXT    NOT NULL,
		start_ns    INTEGER NOT NULL,
		dur_ns      INTEGER NOT NULL,
		status      TEXT    NOT NULL,
		status_msg  TEXT,
		request_id  TEXT,
		route       TEXT,
		http_status INTEGER NOT NULL,
		attrs       TEXT,
		events      TEXT
	)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS spans_trace ON spans(trace_key, span_id)`,
	`CREATE TABLE IF NOT EXISTS logs (
		seq        INTEGER PRIMARY KEY,
		time_ns    INTEGER NOT NULL,
		service    TEXT    NOT NULL,
		instance   TEXT,
		severity   INTEGER NOT NULL,
		level      TEXT    NOT NULL,
		body       TEXT    NOT NULL,
		trace_id   BLOB,
		span_id    BLOB,
		request_id TEXT,
		attrs      TEXT
	)`,
	`CREATE INDEX IF NOT EXISTS logs_request ON logs(request_id, time_ns) WHERE request_id IS NOT NULL`,
	`CREATE INDEX IF NOT EXISTS logs_trace ON logs(trace_id) WHERE trace_id IS NOT NULL`,
	`CREATE INDEX IF NOT EXISTS logs_service_time ON logs(service, time_ns)`,
	`CREATE INDEX IF NOT EXISTS logs_time ON logs(time_ns)`,
}

// migrate creates the schema on a new database and checks the version of
// an existing one.
func migrate(ctx context.Context, conn *sql.Conn) error {
	var version int
	if err := conn.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if version > schemaVersion {
		return fmt.Errorf("store: database schema version %d is newer than this binary's %d", version, schemaVersion)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()
	for _, stmt := range schema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}
