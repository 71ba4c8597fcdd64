// Package store is the embedded default store of the control plane: spans
// and log records in a SQLite database (pure Go, WAL mode), written in
// batches by one writer goroutine and indexed by trace ID, request ID,
// service and time. A write returns once its batch is committed, so an
// acknowledged write survives a crash.
package store
