package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Errors returned by the Store. Compare with errors.Is.
var (
	// ErrBusy: the write queue is full; the caller should retry later
	// (ingest answers 429/503). Nothing of the rejected batch was stored.
	ErrBusy = errors.New("store: write queue full")
	// ErrNotFound: the requested trace does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid: the input cannot be stored; the message names the field.
	ErrInvalid = errors.New("store: invalid input")
)

// FileName is the database file inside the store directory. SQLite keeps
// FileName+"-wal" and FileName+"-shm" next to it.
const FileName = "pilothouse.db"

// Store is the embedded span and log store. All methods are safe for
// concurrent use. Writes go through one writer goroutine that commits
// waiting batches together (group commit); reads use a separate pool of
// connections and never wait for the writer (WAL mode).
type Store struct {
	opts Options
	path string

	writeDB *sql.DB // exactly one connection, used only by the writer goroutine
	w       *writer // owned by the writer goroutine
	readDB  *sql.DB // read pool
	// checkpointDB is the checkpointer goroutine's own connection.
	checkpointDB *sql.DB

	mu     sync.RWMutex // guards closed against sends on the closed queue
	closed bool
	queue  chan *writeReq
	jobs   chan retentionJob

	writerDone     chan struct{}
	stopRetention  chan struct{}
	retentionDone  chan struct{}
	stopCheckpoint chan struct{}
	checkpointDone chan struct{}
	closeOnce      sync.Once
	closeErr       error

	spans, logs, traces atomic.Int64
	writeErrors         atomic.Int64
	lastFailure         atomic.Pointer[writeFailure]
	rejected, deleted   atomic.Int64

	// sizeTrimming is set while size retention trims down to its target;
	// only the writer goroutine uses it.
	sizeTrimming bool
}

// Open opens (creating if needed) the store in dir, in the file
// dir/pilothouse.db, and starts the writer and retention goroutines.
// Close must be called to flush pending writes and stop them.
func Open(dir string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	s := &Store{
		opts:           opts,
		path:           path,
		queue:          make(chan *writeReq, opts.QueueSize),
		jobs:           make(chan retentionJob),
		writerDone:     make(chan struct{}),
		stopRetention:  make(chan struct{}),
		retentionDone:  make(chan struct{}),
		stopCheckpoint: make(chan struct{}),
		checkpointDone: make(chan struct{}),
	}
	ctx := context.Background()
	if err := s.openWriter(ctx); err != nil {
		return nil, err
	}
	if err := s.openReaders(); err != nil {
		s.w.close()
		s.writeDB.Close()
		return nil, err
	}
	if err := s.openCheckpointer(); err != nil {
		s.w.close()
		s.writeDB.Close()
		s.readDB.Close()
		return nil, err
	}
	if err := s.loadCounts(ctx); err != nil {
		s.w.close()
		s.writeDB.Close()
		s.readDB.Close()
		s.checkpointDB.Close()
		return nil, err
	}
	go s.runWriter()
	go s.runCheckpointer()
	if opts.RetentionInterval > 0 {
		go s.runRetention()
	} else {
		close(s.retentionDone)
	}
	return s, nil
}

func (s *Store) openWriter(ctx context.Context) error {
	db, err := sql.Open("sqlite", s.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	// Order matters: page_size only applies before the file is initialized,
	// and must come before journal_mode=WAL.
	pragmas := []string{
		"PRAGMA page_size = " + fmt.Sprint(pageSizeBytes),
		"PRAGMA journal_mode = WAL",
		"PRAGMA synchronous = " + s.opts.Synchronous,
		"PRAGMA cache_size = " + fmt.Sprint(-writerCacheKiB),
		"PRAGMA temp_store = MEMORY",
		"PRAGMA wal_autocheckpoint = 0", // see checkpoint.go
		"PRAGMA journal_size_limit = " + fmt.Sprint(walSizeLimitBytes),
	}
	for _, p := range pragmas {
		if _, err := conn.ExecContext(ctx, p); err != nil {
			conn.Close()
			db.Close()
			return fmt.Errorf("store: %s: %w", p, err)
		}
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		conn.Close()
		db.Close()
		return fmt.Errorf("store: journal mode is %q, want wal: %v", mode, err)
	}
	if err := migrate(ctx, conn); err != nil {
		conn.Close()
		db.Close()
		return err
	}
	w, err := newWriter(ctx, conn)
	if err != nil {
		conn.Close()
		db.Close()
		return err
	}
	s.writeDB, s.w = db, w
	return nil
}

func (s *Store) openReaders() error {
	dsn := fmt.Sprintf("%s?_pragma=busy_timeout(10000)&_pragma=query_only(1)&_pragma=cache_size(%d)&_pragma=mmap_size(%d)",
		s.path, -readerCacheKiB, readerMmapBytes)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("store: open read pool: %w", err)
	}
	db.SetMaxOpenConns(s.opts.ReadConns)
	db.SetMaxIdleConns(s.opts.ReadConns)
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return fmt.Errorf("store: open read pool: %w", err)
	}
	s.readDB = db
	return nil
}

// loadCounts initializes the row counters once; afterwards they are kept
// by the writer and retention.
func (s *Store) loadCounts(ctx context.Context) error {
	for _, c := range []struct {
		table string
		n     *atomic.Int64
	}{{"spans", &s.spans}, {"logs", &s.logs}, {"traces", &s.traces}} {
		var n int64
		if err := s.readDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+c.table).Scan(&n); err != nil {
			return fmt.Errorf("store: count %s: %w", c.table, err)
		}
		c.n.Store(n)
	}
	return nil
}

// Stats returns counters and sizes; it does not touch the database.
func (s *Store) Stats() Stats {
	return Stats{
		Spans:       s.spans.Load(),
		Logs:        s.logs.Load(),
		Traces:      s.traces.Load(),
		SizeBytes:   s.fileBytes(),
		QueueDepth:  len(s.queue),
		WriteErrors: s.writeErrors.Load(),
		Rejected:    s.rejected.Load(),
		Deleted:     s.deleted.Load(),
	}
}

// fileBytes is the size of the database file plus its write-ahead log.
func (s *Store) fileBytes() int64 {
	var n int64
	for _, p := range []string{s.path, s.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// Close stops retention, commits every write already queued, answers its
// callers, and closes the database. Later writes fail with ErrClosed.
// Calling Close again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopRetention)
		<-s.retentionDone
		s.mu.Lock()
		s.closed = true
		close(s.queue)
		s.mu.Unlock()
		<-s.writerDone
		close(s.stopCheckpoint)
		<-s.checkpointDone
		// Leave a small WAL behind; SQLite also checkpoints on last close.
		ckErr := s.checkpoint(context.Background(), "TRUNCATE")
		s.closeErr = errors.Join(s.w.close(), s.writeDB.Close(), s.readDB.Close(), ckErr, s.checkpointDB.Close())
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("store: close: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// Tuning constants, chosen with bench_test.go on a 2-core machine.
const (
	pageSizeBytes     = 8192
	writerCacheKiB    = 64 << 10 // 64 MiB page cache for the writer
	readerCacheKiB    = 16 << 10 // per read connection
	readerMmapBytes   = 256 << 20
	walSizeLimitBytes = 64 << 20
	// A group commit takes waiting requests until either cap is reached.
	maxBatchRequests = 256
	maxBatchRows     = 16384
	// Retention deletes in transactions of at most this many rows, so
	// that ingest keeps flowing between them.
	retentionChunkRows = 5000
)
