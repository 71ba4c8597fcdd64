package store

import "time"

// writeFailure is the most recent failed write transaction.
type writeFailure struct {
	err   error
	since time.Time // first failure of the current run of failures
}

// noteWrite records the outcome of a write transaction for WriteFailure.
// Only the writer goroutine calls it.
func (s *Store) noteWrite(err error) {
	if err == nil {
		if s.lastFailure.Load() != nil {
			s.lastFailure.Store(nil)
		}
		return
	}
	since := s.opts.Now()
	if prev := s.lastFailure.Load(); prev != nil {
		since = prev.since
	}
	s.lastFailure.Store(&writeFailure{err: err, since: since})
}

// WriteFailure reports whether the store is failing writes: the error of
// the most recent write transaction and when the current run of failures
// began, or a nil error once a later write succeeded (the error comes
// last, as Go convention has it). A dashboard shows
// it so an operator learns why ingest answers 503. It is safe for
// concurrent use.
func (s *Store) WriteFailure() (since time.Time, err error) {
	if f := s.lastFailure.Load(); f != nil {
		return f.since, f.err
	}
	return time.Time{}, nil
}
