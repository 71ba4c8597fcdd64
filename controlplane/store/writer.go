package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// writeReq is one WriteSpans or WriteLogs call waiting for the writer.
type writeReq struct {
	spans []spanRow
	logs  []logRow
	seqs  []int64    // filled with the assigned log seqs on success
	done  chan error // buffered; receives exactly one result
}

func (r *writeReq) rows() int { return len(r.spans) + len(r.logs) }

// WriteSpans stores spans and returns once they are committed: a nil
// error means they survive a crash of the process. Spans of one trace may
// arrive in any order and in any number of calls; a span already stored
// (same trace and span ID) is ignored. The whole call is rejected with
// ErrInvalid when any span is invalid, with ErrBusy at once when the write
// queue is full, with ErrClosed after Close. If ctx ends first the spans
// may or may not be stored.
func (s *Store) WriteSpans(ctx context.Context, spans []Span) error {
	if len(spans) == 0 {
		return nil
	}
	rows := make([]spanRow, len(spans))
	for i := range spans {
		r, err := newSpanRow(&spans[i])
		if err != nil {
			return fmt.Errorf("%w: span %d: %w", ErrInvalid, i, err)
		}
		rows[i] = r
	}
	_, err := s.submit(ctx, &writeReq{spans: rows, done: make(chan error, 1)})
	return err
}

// WriteLogs stores log records and returns once they are committed, like
// WriteSpans. On success it sets Seq of every element of logs.
func (s *Store) WriteLogs(ctx context.Context, logs []LogRecord) error {
	if len(logs) == 0 {
		return nil
	}
	rows := make([]logRow, len(logs))
	for i := range logs {
		r, err := newLogRow(&logs[i])
		if err != nil {
			return fmt.Errorf("%w: log %d: %w", ErrInvalid, i, err)
		}
		rows[i] = r
	}
	req := &writeReq{logs: rows, seqs: make([]int64, len(rows)), done: make(chan error, 1)}
	if _, err := s.submit(ctx, req); err != nil {
		return err
	}
	for i := range logs {
		logs[i].Seq = req.seqs[i]
	}
	return nil
}

// submit enqueues req without blocking and waits for its commit.
func (s *Store) submit(ctx context.Context, req *writeReq) (*writeReq, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: write: %w", err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case s.queue <- req:
		s.mu.RUnlock()
	default:
		s.mu.RUnlock()
		s.rejected.Add(1)
		return nil, ErrBusy
	}
	select {
	case err := <-req.done:
		if err != nil {
			return nil, err
		}
		return req, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("store: write not confirmed: %w", ctx.Err())
	}
}

// runWriter is the writer goroutine: it takes a request, adds every other
// request already waiting (up to the batch caps), commits them in one
// transaction and answers them all. It exits when the queue is closed and
// drained.
func (s *Store) runWriter() {
	defer close(s.writerDone)
	for {
		select {
		case req, ok := <-s.queue:
			if !ok {
				return
			}
			s.writeBatch(s.collect(req))
		case job := <-s.jobs:
			job.done <- s.retain(job.now)
		}
	}
}

// collect gathers first and the requests waiting behind it.
func (s *Store) collect(first *writeReq) []*writeReq {
	batch := []*writeReq{first}
	rows := first.rows()
	for len(batch) < maxBatchRequests && rows < maxBatchRows {
		select {
		case req, ok := <-s.queue:
			if !ok {
				return batch
			}
			batch = append(batch, req)
			rows += req.rows()
		default:
			return batch
		}
	}
	return batch
}

// writeBatch commits batch and answers its callers. If the group fails,
// each request is retried alone so one bad request cannot fail the others.
func (s *Store) writeBatch(batch []*writeReq) {
	res, err := s.w.commit(batch)
	if err != nil && len(batch) > 1 {
		for _, req := range batch {
			s.writeBatch([]*writeReq{req})
		}
		return
	}
	if err != nil {
		s.writeErrors.Add(1)
	} else {
		s.spans.Add(res.spans)
		s.traces.Add(res.traces)
		s.logs.Add(res.logs)
	}
	for _, req := range batch {
		req.done <- err
	}
}

// flushPending commits the requests waiting in the queue, if any. Long jobs
// on the writer goroutine call it between their steps.
func (s *Store) flushPending() {
	select {
	case req, ok := <-s.queue:
		if ok {
			s.writeBatch(s.collect(req))
		}
	default:
	}
}

// writer owns the single write connection and its prepared statements.
// Only the writer goroutine uses it.
type writer struct {
	conn         *sql.Conn
	insertSpan   *sql.Stmt
	insertLog    *sql.Stmt
	selectTrace  *sql.Stmt
	insertTrace  *sql.Stmt
	updateTrace  *sql.Stmt
	nextTraceKey int64
}

const traceColumns = `start_ns, end_ns, span_count, error_count, services, has_root,
	root_start_ns, root_service, root_name, route, http_status, request_id`

func newWriter(ctx context.Context, conn *sql.Conn) (*writer, error) {
	w := &writer{conn: conn}
	stmts := []struct {
		dst  **sql.Stmt
		text string
	}{
		{&w.insertSpan, `INSERT OR IGNORE INTO spans (trace_key, span_id, parent_id, service, instance, name, kind,
			start_ns, dur_ns, status, status_msg, request_id, route, http_status, attrs, events)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.insertLog, `INSERT INTO logs (time_ns, service, instance, severity, level, body, trace_id, span_id, request_id, attrs)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.selectTrace, `SELECT id, ` + traceColumns + ` FROM traces WHERE trace_id = ?`},
		{&w.insertTrace, `INSERT INTO traces (id, trace_id, ` + traceColumns + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.updateTrace, `UPDATE traces SET start_ns = ?, end_ns = ?, span_count = ?, error_count = ?, services = ?,
			has_root = ?, root_start_ns = ?, root_service = ?, root_name = ?, route = ?, http_status = ?, request_id = ?
			WHERE id = ?`},
	}
	for _, st := range stmts {
		p, err := conn.PrepareContext(ctx, st.text)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("store: prepare: %w", err)
		}
		*st.dst = p
	}
	if err := w.loadNextTraceKey(ctx); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *writer) loadNextTraceKey(ctx context.Context) error {
	var max int64
	if err := w.conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM traces`).Scan(&max); err != nil {
		return fmt.Errorf("store: read trace keys: %w", err)
	}
	w.nextTraceKey = max + 1
	return nil
}

func (w *writer) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{w.insertSpan, w.insertLog, w.selectTrace, w.insertTrace, w.updateTrace} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, w.conn.Close())
	return errors.Join(errs...)
}

// commitResult counts the rows a commit added.
type commitResult struct{ spans, traces, logs int64 }

// commit writes batch in one transaction.
func (w *writer) commit(batch []*writeReq) (commitResult, error) {
	ctx := context.Background()
	var res commitResult
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return res, fmt.Errorf("store: begin: %w", err)
	}
	err := w.writeAll(ctx, batch, &res)
	if err == nil {
		if _, err = w.conn.ExecContext(ctx, "COMMIT"); err != nil {
			err = fmt.Errorf("store: commit: %w", err)
		}
	}
	if err != nil {
		_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
		// Keys handed out in the failed transaction were not stored.
		if kerr := w.loadNextTraceKey(ctx); kerr != nil {
			err = errors.Join(err, kerr)
		}
		return commitResult{}, err
	}
	return res, nil
}

func (w *writer) writeAll(ctx context.Context, batch []*writeReq, res *commitResult) error {
	// Group spans by trace so each trace summary is read and written once.
	var order [][16]byte
	groups := make(map[[16]byte][]*spanRow)
	for _, req := range batch {
		for i := range req.spans {
			r := &req.spans[i]
			g, ok := groups[r.traceID]
			if !ok {
				order = append(order, r.traceID)
			}
			groups[r.traceID] = append(g, r)
		}
	}
	for _, id := range order {
		if err := w.writeTrace(ctx, id, groups[id], res); err != nil {
			return err
		}
	}
	for _, req := range batch {
		for i := range req.logs {
			seq, err := w.writeLog(ctx, &req.logs[i])
			if err != nil {
				return err
			}
			req.seqs[i] = seq
		}
		res.logs += int64(len(req.logs))
	}
	return nil
}

func (w *writer) writeTrace(ctx context.Context, traceID [16]byte, spans []*spanRow, res *commitResult) error {
	sum, found, err := w.loadSummary(ctx, traceID)
	if err != nil {
		return err
	}
	if !found {
		sum.key = w.nextTraceKey
		w.nextTraceKey++
	}
	added := 0
	for _, r := range spans {
		out, err := w.insertSpan.ExecContext(ctx, sum.key, r.spanID, r.parentID, r.service, nullString(r.instance),
			r.name, r.kind, r.startNs, r.durNs, r.status, nullString(r.statusMsg), nullString(r.requestID),
			nullString(r.route), r.httpStatus, nullBytesText(r.attrs), nullBytesText(r.events))
		if err != nil {
			return fmt.Errorf("store: insert span: %w", err)
		}
		if n, _ := out.RowsAffected(); n == 1 {
			sum.add(r)
			added++
		}
	}
	res.spans += int64(added)
	switch {
	case added == 0:
		return nil
	case !found:
		res.traces++
		_, err = w.insertTrace.ExecContext(ctx, append([]any{sum.key, traceID[:]}, sum.values()...)...)
	default:
		_, err = w.updateTrace.ExecContext(ctx, append(sum.values(), sum.key)...)
	}
	if err != nil {
		return fmt.Errorf("store: write trace summary: %w", err)
	}
	return nil
}

func (w *writer) loadSummary(ctx context.Context, traceID [16]byte) (traceSummaryRow, bool, error) {
	var t traceSummaryRow
	var services string
	var route, requestID sql.NullString
	err := w.selectTrace.QueryRowContext(ctx, traceID[:]).Scan(&t.key, &t.startNs, &t.endNs, &t.spanCount,
		&t.errorCount, &services, &t.hasRoot, &t.rootStartNs, &t.rootService, &t.rootName, &route,
		&t.httpStatus, &requestID)
	if errors.Is(err, sql.ErrNoRows) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("store: read trace summary: %w", err)
	}
	t.services = splitServices(services)
	t.route, t.requestID = route.String, requestID.String
	return t, true, nil
}

func (w *writer) writeLog(ctx context.Context, r *logRow) (int64, error) {
	out, err := w.insertLog.ExecContext(ctx, r.timeNs, r.service, nullString(r.instance), r.severity, r.level,
		r.body, nullBytes(r.traceID), nullBytes(r.spanID), nullString(r.requestID), nullBytesText(r.attrs))
	if err != nil {
		return 0, fmt.Errorf("store: insert log: %w", err)
	}
	seq, err := out.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("store: insert log: %w", err)
	}
	return seq, nil
}

// traceSummaryRow is a traces row being merged with new spans.
type traceSummaryRow struct {
	key         int64
	startNs     int64
	endNs       int64
	spanCount   int
	errorCount  int
	services    []string // sorted
	hasRoot     bool
	rootStartNs int64
	rootService string
	rootName    string
	route       string
	httpStatus  int
	requestID   string
}

// add merges one new span. Until the root span (no parent) arrives, the
// earliest span stands in for it, so a trace is searchable at once; the
// earliest root wins when several arrive.
func (t *traceSummaryRow) add(r *spanRow) {
	first := t.spanCount == 0
	if first || r.startNs < t.startNs {
		t.startNs = r.startNs
	}
	if first || r.endNs() > t.endNs {
		t.endNs = r.endNs()
	}
	t.spanCount++
	if r.isError() {
		t.errorCount++
	}
	svc := serviceKey(r.service)
	if i, found := slices.BinarySearch(t.services, svc); !found {
		t.services = slices.Insert(t.services, i, svc)
	}
	takeRoot := false
	switch {
	case r.isRoot():
		takeRoot = !t.hasRoot || r.startNs < t.rootStartNs
		t.hasRoot = true
	case !t.hasRoot:
		takeRoot = first || r.startNs < t.rootStartNs
	}
	if takeRoot {
		t.rootStartNs = r.startNs
		t.rootService, t.rootName = r.service, r.name
		t.route, t.httpStatus = r.route, r.httpStatus
		if r.requestID != "" {
			t.requestID = r.requestID
		}
	}
	if t.requestID == "" {
		t.requestID = r.requestID
	}
}

// values returns the columns of traceColumns, in order.
func (t *traceSummaryRow) values() []any {
	return []any{t.startNs, t.endNs, t.spanCount, t.errorCount, joinServices(t.services), t.hasRoot,
		t.rootStartNs, t.rootService, t.rootName, nullString(t.route), t.httpStatus, nullString(t.requestID)}
}

// serviceKey is a service name as kept in a trace's service set, which is
// comma-separated.
func serviceKey(s string) string { return strings.ReplaceAll(s, ",", "_") }

// Services are stored as ",a,b," so a service filter is one instr() test.
func joinServices(s []string) string {
	if len(s) == 0 {
		return ","
	}
	return "," + strings.Join(s, ",") + ","
}

func splitServices(s string) []string {
	s = strings.Trim(s, ",")
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// nullBytesText stores JSON as TEXT so SQLite's JSON functions read it.
func nullBytesText(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
