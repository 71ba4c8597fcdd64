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
	arena := jsonArena{buf: make([]byte, 0, len(spans)*arenaBytesPerRow)}
	for i := range spans {
		if err := newSpanRow(&spans[i], &rows[i], &arena); err != nil {
			return fmt.Errorf("%w: span %d: %w", ErrInvalid, i, err)
		}
	}
	arena.fill()
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
	arena := jsonArena{buf: make([]byte, 0, len(logs)*arenaBytesPerRow)}
	for i := range logs {
		if err := newLogRow(&logs[i], &rows[i], &arena); err != nil {
			return fmt.Errorf("%w: log %d: %w", ErrInvalid, i, err)
		}
	}
	arena.fill()
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
	var (
		res commitResult
		err error
	)
	if s.opts.WriteFault != nil {
		if ferr := s.opts.WriteFault(); ferr != nil {
			err = fmt.Errorf("store: write: %w", ferr)
		}
	}
	if err == nil {
		res, err = s.w.commit(batch)
		if err != nil && len(batch) > 1 {
			for _, req := range batch {
				s.writeBatch([]*writeReq{req})
			}
			return
		}
	}
	s.noteWrite(err)
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
// Only the writer goroutine uses it. Rows are written with multi-row
// statements (one statement per chunk instead of one per row): on this
// driver the per-statement cost dominates the per-row cost.
type writer struct {
	conn  *sql.Conn
	stmts map[stmtKey]*sql.Stmt
	// Trace keys and log seqs are assigned here, not by SQLite, so a
	// multi-row INSERT needs no RETURNING; both are reloaded on rollback.
	nextTraceKey int64
	nextSeq      int64
	// cache holds recently committed trace summaries (see traceCache);
	// committing lists the traces written by the open transaction.
	cache      *traceCache
	committing []*traceGroup
}

// Chunk sizes of the multi-row statements (rows per statement).
const (
	spanChunk   = 64 // 16 columns
	traceChunk  = 64 // 14 columns
	lookupChunk = 128
	logChunk    = 64 // 11 columns
)

type stmtKind int

const (
	stmtInsertSpans stmtKind = iota
	stmtInsertNewSpans
	stmtUpsertTraces
	stmtUpdateTraces
	stmtLookupTraces
	stmtInsertLogs
)

type stmtKey struct {
	kind stmtKind
	rows int
}

const traceColumns = `start_ns, end_ns, span_count, error_count, services, has_root,
	root_start_ns, root_service, root_name, route, http_status, request_id`

// statementText returns the SQL for kind with n rows.
func statementText(kind stmtKind, n int) string {
	values := func(cols int) string {
		row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
		return strings.TrimSuffix(strings.Repeat(row+",", n), ",")
	}
	switch kind {
	case stmtInsertSpans:
		// RETURNING lists only rows actually inserted: a span sent twice
		// is ignored and must not be counted in its trace's summary.
		return `INSERT OR IGNORE INTO spans (trace_key, span_id, parent_id, service, instance, name, kind,
			start_ns, dur_ns, status, status_msg, request_id, route, http_status, attrs, events)
			VALUES ` + values(16) + ` RETURNING trace_key, span_id`
	case stmtInsertNewSpans:
		// Spans of a trace not stored before cannot conflict (duplicates in
		// the batch were dropped), so they skip RETURNING.
		return `INSERT INTO spans (trace_key, span_id, parent_id, service, instance, name, kind,
			start_ns, dur_ns, status, status_msg, request_id, route, http_status, attrs, events)
			VALUES ` + values(16)
	case stmtUpsertTraces:
		return `INSERT INTO traces (id, trace_id, ` + traceColumns + `) VALUES ` + values(14) + `
			ON CONFLICT (id) DO UPDATE SET start_ns = excluded.start_ns, end_ns = excluded.end_ns,
			span_count = excluded.span_count, error_count = excluded.error_count, services = excluded.services,
			has_root = excluded.has_root, root_start_ns = excluded.root_start_ns,
			root_service = excluded.root_service, root_name = excluded.root_name, route = excluded.route,
			http_status = excluded.http_status, request_id = excluded.request_id`
	case stmtUpdateTraces:
		// The same upsert for stored traces whose start and request ID did
		// not change: leaving the indexed columns out of the SET list
		// spares SQLite the index updates.
		return `INSERT INTO traces (id, trace_id, ` + traceColumns + `) VALUES ` + values(14) + `
			ON CONFLICT (id) DO UPDATE SET end_ns = excluded.end_ns,
			span_count = excluded.span_count, error_count = excluded.error_count, services = excluded.services,
			has_root = excluded.has_root, root_start_ns = excluded.root_start_ns,
			root_service = excluded.root_service, root_name = excluded.root_name, route = excluded.route,
			http_status = excluded.http_status`
	case stmtLookupTraces:
		return `SELECT id, trace_id, ` + traceColumns + ` FROM traces WHERE trace_id IN (` +
			strings.TrimSuffix(strings.Repeat("?,", n), ",") + `)`
	case stmtInsertLogs:
		return `INSERT INTO logs (seq, time_ns, service, instance, severity, level, body, trace_id, span_id,
			request_id, attrs) VALUES ` + values(11)
	}
	panic("store: unknown statement kind")
}

func newWriter(ctx context.Context, conn *sql.Conn) (*writer, error) {
	w := &writer{conn: conn, stmts: make(map[stmtKey]*sql.Stmt), cache: newTraceCache(traceCacheGeneration)}
	if err := w.loadCounters(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// stmt returns the prepared statement for kind with n rows, preparing it
// on first use.
func (w *writer) stmt(ctx context.Context, kind stmtKind, n int) (*sql.Stmt, error) {
	k := stmtKey{kind, n}
	if st, ok := w.stmts[k]; ok {
		return st, nil
	}
	st, err := w.conn.PrepareContext(ctx, statementText(kind, n))
	if err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	w.stmts[k] = st
	return st, nil
}

func (w *writer) loadCounters(ctx context.Context) error {
	err := w.conn.QueryRowContext(ctx,
		`SELECT (SELECT COALESCE(MAX(id), 0) FROM traces), (SELECT COALESCE(MAX(seq), 0) FROM logs)`).
		Scan(&w.nextTraceKey, &w.nextSeq)
	if err != nil {
		return fmt.Errorf("store: read keys: %w", err)
	}
	w.nextTraceKey++
	w.nextSeq++
	return nil
}

func (w *writer) close() error {
	var errs []error
	for _, st := range w.stmts {
		errs = append(errs, st.Close())
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
	err := w.writeSpans(ctx, batch, &res)
	if err == nil {
		err = w.writeLogs(ctx, batch, &res)
	}
	if err == nil {
		if _, err = w.conn.ExecContext(ctx, "COMMIT"); err != nil {
			err = fmt.Errorf("store: commit: %w", err)
		}
	}
	if err != nil {
		_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
		// The cache may hold what the failed transaction would have
		// written; keys handed out in it were not stored.
		w.cache.reset()
		clear(w.committing)
		w.committing = w.committing[:0]
		if kerr := w.loadCounters(ctx); kerr != nil {
			err = errors.Join(err, kerr)
		}
		return commitResult{}, err
	}
	w.cacheCommitted()
	return res, nil
}

// traceGroup is the spans of one trace in a batch.
type traceGroup struct {
	id    [16]byte
	spans map[[8]byte]*spanRow // deduplicated by span ID
	sum   traceSummaryRow
	found bool // the trace was already stored
	added int
	// indexed column values as stored, when found
	storedStart     int64
	storedRequestID string
	// cached is the trace cache entry the group started from, if any.
	cached *cachedTrace
	// idsKnown: every stored span ID of the trace is known (a new trace,
	// or cached.spanIDs), so re-sent spans are found in memory.
	idsKnown bool
	addedIDs [][8]byte // IDs of the spans added, while idsKnown
}

// addSpan merges a span that is being inserted into the group's summary.
func (g *traceGroup) addSpan(r *spanRow) {
	g.sum.add(r)
	g.added++
	if g.idsKnown {
		g.addedIDs = append(g.addedIDs, [8]byte(r.spanID))
	}
}

// writeSpans stores the spans of batch and merges them into their traces'
// summaries: find the stored summaries (trace cache, then the database),
// insert the spans, then upsert the summaries, each step in multi-row
// statements. The trace cache is updated by commit once the transaction
// is committed.
func (w *writer) writeSpans(ctx context.Context, batch []*writeReq, res *commitResult) error {
	var groups []*traceGroup
	byID := make(map[[16]byte]*traceGroup)
	var spans []*spanRow
	for _, req := range batch {
		for i := range req.spans {
			r := &req.spans[i]
			g := byID[r.traceID]
			if g == nil {
				g = &traceGroup{id: r.traceID, spans: make(map[[8]byte]*spanRow, 8)}
				byID[r.traceID] = g
				groups = append(groups, g)
			}
			sid := [8]byte(r.spanID)
			if _, dup := g.spans[sid]; !dup {
				g.spans[sid] = r
				spans = append(spans, r)
			}
		}
	}
	if len(groups) == 0 {
		return nil
	}
	var misses []*traceGroup
	for _, g := range groups {
		e := w.cache.get(g.id)
		if e == nil {
			misses = append(misses, g)
			continue
		}
		g.cached, g.found, g.idsKnown = e, true, e.spanIDs != nil
		g.sum = e.sum
		g.sum.services = slices.Clone(e.sum.services) // add may insert
		g.storedStart, g.storedRequestID = e.sum.startNs, e.sum.requestID
	}
	if err := w.lookupTraces(ctx, misses, byID); err != nil {
		return err
	}
	byKey := make(map[int64]*traceGroup, len(groups))
	for _, g := range groups {
		if !g.found {
			g.sum.key = w.nextTraceKey
			w.nextTraceKey++
			g.idsKnown = true
		}
		byKey[g.sum.key] = g
	}
	// Spans known to be new are inserted with a plain INSERT; spans of
	// stored traces whose span IDs are not known need INSERT OR IGNORE
	// with RETURNING to learn which were stored before.
	var newSpans, oldSpans []*spanRow
	for _, r := range spans {
		g := byID[r.traceID]
		switch {
		case !g.found:
			newSpans = append(newSpans, r)
			g.addSpan(r)
		case g.idsKnown:
			if !g.cached.has([8]byte(r.spanID)) {
				newSpans = append(newSpans, r)
				g.addSpan(r)
			}
		default:
			oldSpans = append(oldSpans, r)
		}
	}
	for chunk := range slices.Chunk(newSpans, spanChunk) {
		if err := w.insertNewSpans(ctx, chunk, byID); err != nil {
			return err
		}
	}
	for chunk := range slices.Chunk(oldSpans, spanChunk) {
		if err := w.insertSpans(ctx, chunk, byID, byKey); err != nil {
			return err
		}
	}
	var upserts, updates []*traceGroup
	for _, g := range groups {
		if g.added == 0 {
			continue
		}
		w.committing = append(w.committing, g)
		res.spans += int64(g.added)
		switch {
		case !g.found:
			res.traces++
			upserts = append(upserts, g)
		case g.sum.startNs != g.storedStart || g.sum.requestID != g.storedRequestID:
			upserts = append(upserts, g)
		default:
			updates = append(updates, g)
		}
	}
	if err := w.writeSummaries(ctx, stmtUpsertTraces, upserts); err != nil {
		return err
	}
	return w.writeSummaries(ctx, stmtUpdateTraces, updates)
}

// cacheCommitted records the traces of the transaction just committed in
// the trace cache.
func (w *writer) cacheCommitted() {
	for _, g := range w.committing {
		var ids [][8]byte
		if g.idsKnown {
			var stored [][8]byte
			if g.cached != nil {
				stored = g.cached.spanIDs
			}
			if n := len(stored) + len(g.addedIDs); n <= maxCachedSpanIDs {
				ids = make([][8]byte, 0, n)
				ids = append(append(ids, stored...), g.addedIDs...)
			}
		}
		w.cache.put(g.id, &cachedTrace{sum: g.sum.detached(g.cached), spanIDs: ids})
	}
	clear(w.committing)
	w.committing = w.committing[:0]
}

// writeSummaries writes the summaries of groups with kind, an upsert.
func (w *writer) writeSummaries(ctx context.Context, kind stmtKind, groups []*traceGroup) error {
	for chunk := range slices.Chunk(groups, traceChunk) {
		st, err := w.stmt(ctx, kind, len(chunk))
		if err != nil {
			return err
		}
		args := make([]any, 0, 14*len(chunk))
		for _, g := range chunk {
			args = append(args, g.sum.key, g.id[:])
			args = g.sum.appendValues(args)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("store: write trace summaries: %w", err)
		}
	}
	return nil
}

// lookupTraces loads the stored summaries of groups' traces.
func (w *writer) lookupTraces(ctx context.Context, groups []*traceGroup, byID map[[16]byte]*traceGroup) error {
	for chunk := range slices.Chunk(groups, lookupChunk) {
		st, err := w.stmt(ctx, stmtLookupTraces, len(chunk))
		if err != nil {
			return err
		}
		args := make([]any, len(chunk))
		for i, g := range chunk {
			args[i] = g.id[:]
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("store: read trace summaries: %w", err)
		}
		for rows.Next() {
			var t traceSummaryRow
			var id []byte
			var services string
			var route, requestID sql.NullString
			if err := rows.Scan(&t.key, &id, &t.startNs, &t.endNs, &t.spanCount, &t.errorCount, &services,
				&t.hasRoot, &t.rootStartNs, &t.rootService, &t.rootName, &route, &t.httpStatus, &requestID); err != nil {
				rows.Close()
				return fmt.Errorf("store: read trace summaries: %w", err)
			}
			t.services = splitServices(services)
			t.route, t.requestID = route.String, requestID.String
			if g := byID[[16]byte(id)]; g != nil {
				g.sum, g.found = t, true
				g.storedStart, g.storedRequestID = t.startNs, t.requestID
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("store: read trace summaries: %w", err)
		}
	}
	return nil
}

// spanArgs appends the insert arguments of chunk.
func spanArgs(chunk []*spanRow, byID map[[16]byte]*traceGroup) []any {
	args := make([]any, 0, 16*len(chunk))
	for _, r := range chunk {
		args = append(args, byID[r.traceID].sum.key, r.spanID, nullBytes(r.parentID), r.service,
			nullString(r.instance), r.name, r.kind, r.startNs, r.durNs, r.status, nullString(r.statusMsg),
			nullString(r.requestID), nullString(r.route), r.httpStatus, nullString(r.attrs), nullString(r.events))
	}
	return args
}

// insertNewSpans inserts one chunk of spans of traces not stored before.
func (w *writer) insertNewSpans(ctx context.Context, chunk []*spanRow, byID map[[16]byte]*traceGroup) error {
	st, err := w.stmt(ctx, stmtInsertNewSpans, len(chunk))
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, spanArgs(chunk, byID)...); err != nil {
		return fmt.Errorf("store: insert spans: %w", err)
	}
	return nil
}

// insertSpans inserts one chunk of spans of stored traces and merges the spans actually inserted
// into their groups' summaries.
func (w *writer) insertSpans(ctx context.Context, chunk []*spanRow, byID map[[16]byte]*traceGroup, byKey map[int64]*traceGroup) error {
	st, err := w.stmt(ctx, stmtInsertSpans, len(chunk))
	if err != nil {
		return err
	}
	rows, err := st.QueryContext(ctx, spanArgs(chunk, byID)...)
	if err != nil {
		return fmt.Errorf("store: insert spans: %w", err)
	}
	for rows.Next() {
		var key int64
		var sid []byte
		if err := rows.Scan(&key, &sid); err != nil {
			rows.Close()
			return fmt.Errorf("store: insert spans: %w", err)
		}
		if g := byKey[key]; g != nil && len(sid) == 8 {
			if r := g.spans[[8]byte(sid)]; r != nil {
				g.addSpan(r)
			}
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("store: insert spans: %w", err)
	}
	return nil
}

// writeLogs stores the logs of batch, assigning their seqs.
func (w *writer) writeLogs(ctx context.Context, batch []*writeReq, res *commitResult) error {
	var logs []*logRow
	for _, req := range batch {
		for i := range req.logs {
			req.seqs[i] = w.nextSeq
			w.nextSeq++
			logs = append(logs, &req.logs[i])
		}
	}
	seq := w.nextSeq - int64(len(logs))
	for chunk := range slices.Chunk(logs, logChunk) {
		st, err := w.stmt(ctx, stmtInsertLogs, len(chunk))
		if err != nil {
			return err
		}
		args := make([]any, 0, 11*len(chunk))
		for _, r := range chunk {
			args = append(args, seq, r.timeNs, r.service, nullString(r.instance), r.severity, r.level, r.body,
				nullBytes(r.traceID), nullBytes(r.spanID), nullString(r.requestID), nullString(r.attrs))
			seq++
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("store: insert logs: %w", err)
		}
	}
	res.logs += int64(len(logs))
	return nil
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

// appendValues appends the columns of traceColumns, in order.
func (t *traceSummaryRow) appendValues(args []any) []any {
	return append(args, t.startNs, t.endNs, t.spanCount, t.errorCount, joinServices(t.services), t.hasRoot,
		t.rootStartNs, t.rootService, t.rootName, nullString(t.route), t.httpStatus, nullString(t.requestID))
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

// arenaBytesPerRow is the initial JSON arena space per row of a write
// call: typical attributes of an instrumented HTTP span fit.
const arenaBytesPerRow = 320
