package store

// This file fixes the Store API that ingest, the query API and the dashboard
// build on. The implementation lives in the rest of the package.
//
//	func Open(dir string, opts Options) (*Store, error)
//	func (s *Store) WriteSpans(ctx context.Context, spans []Span) error  // returns after commit; ErrBusy when the queue is full
//	func (s *Store) WriteLogs(ctx context.Context, logs []LogRecord) error
//	func (s *Store) Traces(ctx context.Context, f TraceFilter) ([]TraceSummary, error)
//	func (s *Store) Trace(ctx context.Context, traceID string) ([]Span, error) // ErrNotFound when unknown; ordered by start
//	func (s *Store) Logs(ctx context.Context, f LogFilter) ([]LogRecord, error)
//	func (s *Store) Edges(ctx context.Context, since, until time.Time) ([]Edge, error)
//	func (s *Store) Stats() Stats
//	func (s *Store) Close() error
