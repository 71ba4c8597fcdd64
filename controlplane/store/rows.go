package store

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// spanRow is a validated span in its stored form. Rows are built by the
// caller's goroutine, so the single writer goroutine only runs SQL.
type spanRow struct {
	traceID    [16]byte
	spanID     []byte
	parentID   []byte // nil for a root span
	service    string
	instance   string
	name       string
	kind       string
	startNs    int64
	durNs      int64
	status     string
	statusMsg  string
	requestID  string
	route      string
	httpStatus int
	attrs      string // JSON object, "" for none
	events     string // JSON array, "" for none
}

func (r *spanRow) isError() bool { return r.status == "error" }
func (r *spanRow) isRoot() bool  { return r.parentID == nil }
func (r *spanRow) endNs() int64  { return r.startNs + r.durNs }

// logRow is a validated log record in its stored form.
type logRow struct {
	timeNs    int64
	service   string
	instance  string
	severity  int
	level     string
	body      string
	traceID   []byte
	spanID    []byte
	requestID string
	attrs     string // JSON object, "" for none
}

var spanKinds = map[string]bool{
	"internal": true, "server": true, "client": true,
	"producer": true, "consumer": true, "unspecified": true,
}

var spanStatuses = map[string]bool{"unset": true, "ok": true, "error": true}

// Validate reports whether s can be stored, naming the field at fault.
// The error wraps ErrInvalid. Hex IDs may be upper- or lowercase.
// Ingest can call it per span to report partial success.
func (s Span) Validate() error {
	var r spanRow
	if err := newSpanRow(&s, &r, nil); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Validate reports whether l can be stored, naming the field at fault.
// The error wraps ErrInvalid.
func (l LogRecord) Validate() error {
	var r logRow
	if err := newLogRow(&l, &r, nil); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// invalid describes a field at fault; callers wrap it with ErrInvalid.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

// decodeID decodes a hex ID of n bytes; all-zero IDs are invalid in OTLP.
func decodeID(field, id string, n int) ([]byte, error) {
	if len(id) != 2*n {
		return nil, invalid(field, "got %d characters, want %d hex characters", len(id), 2*n)
	}
	b, err := hex.DecodeString(id)
	if err != nil {
		return nil, invalid(field, "%q is not hex", id)
	}
	for _, c := range b {
		if c != 0 {
			return b, nil
		}
	}
	return nil, invalid(field, "must not be all zeros")
}

// jsonArena collects the JSON columns of the rows of one write call in one
// buffer, turned into one string at the end: one allocation for all rows
// instead of two per row (encoding, then []byte to string for the driver).
type jsonArena struct {
	buf  []byte
	refs []arenaRef
}

// arenaRef is a slice of the arena destined for *dst.
type arenaRef struct {
	dst        *string
	start, end int
}

// fill sets every referenced string from the arena.
func (a *jsonArena) fill() {
	all := string(a.buf)
	for _, r := range a.refs {
		*r.dst = all[r.start:r.end]
	}
	a.buf, a.refs = a.buf[:0], a.refs[:0]
}

// marshalAttrs encodes m as a JSON object into dst: at once if arena is
// nil, else when the arena is filled.
func marshalAttrs(field string, m map[string]any, dst *string, arena *jsonArena) error {
	if len(m) == 0 {
		return nil
	}
	var local jsonArena
	if arena == nil {
		arena = &local
	}
	start := len(arena.buf)
	b, err := appendAttrsJSON(arena.buf, m)
	if err != nil {
		arena.buf = arena.buf[:start]
		return invalid(field, "not representable as JSON: %v", err)
	}
	arena.buf = b
	arena.refs = append(arena.refs, arenaRef{dst, start, len(b)})
	if arena == &local {
		local.fill()
	}
	return nil
}

// marshalEvents encodes events as a JSON array, like marshalAttrs.
func marshalEvents(events []SpanEvent, dst *string, arena *jsonArena) error {
	if len(events) == 0 {
		return nil
	}
	b, err := json.Marshal(events)
	if err != nil {
		return invalid("events", "not representable as JSON: %v", err)
	}
	if arena == nil {
		*dst = string(b)
		return nil
	}
	start := len(arena.buf)
	arena.buf = append(arena.buf, b...)
	arena.refs = append(arena.refs, arenaRef{dst, start, len(arena.buf)})
	return nil
}

// newSpanRow validates s into r. The JSON columns are set at once when
// arena is nil, else when the arena is filled (r must not move until then).
func newSpanRow(s *Span, r *spanRow, arena *jsonArena) error {
	tid, err := decodeID("trace_id", s.TraceID, 16)
	if err != nil {
		return err
	}
	copy(r.traceID[:], tid)
	if r.spanID, err = decodeID("span_id", s.SpanID, 8); err != nil {
		return err
	}
	if s.ParentSpanID != "" && s.ParentSpanID != "0000000000000000" {
		if r.parentID, err = decodeID("parent_span_id", s.ParentSpanID, 8); err != nil {
			return err
		}
	}
	if s.Start.IsZero() {
		return invalid("start", "must be set")
	}
	if s.Duration < 0 {
		return invalid("duration", "got %v, want >= 0", s.Duration)
	}
	r.kind = strings.ToLower(s.Kind)
	if r.kind == "" {
		r.kind = "unspecified"
	}
	if !spanKinds[r.kind] {
		return invalid("kind", "%q is not one of internal, server, client, producer, consumer, unspecified", s.Kind)
	}
	r.status = strings.ToLower(s.StatusCode)
	if r.status == "" {
		r.status = "unset"
	}
	if !spanStatuses[r.status] {
		return invalid("status", "%q is not one of unset, ok, error", s.StatusCode)
	}
	if s.HTTPStatus < 0 || s.HTTPStatus > 999 {
		return invalid("http_status", "got %d, want 0 or 100-999", s.HTTPStatus)
	}
	if err := marshalAttrs("attributes", s.Attributes, &r.attrs, arena); err != nil {
		return err
	}
	if err := marshalEvents(s.Events, &r.events, arena); err != nil {
		return err
	}
	r.service = s.Service
	r.instance = s.Instance
	r.name = s.Name
	r.startNs = s.Start.UnixNano()
	r.durNs = int64(s.Duration)
	r.statusMsg = s.StatusMessage
	r.requestID = s.RequestID
	r.route = s.Route
	r.httpStatus = s.HTTPStatus
	return nil
}

// Severity numbers of the OpenTelemetry log data model that start each level.
const (
	severityTrace = 1
	severityDebug = 5
	severityInfo  = 9
	severityWarn  = 13
	severityError = 17
	severityFatal = 21
	severityMax   = 24
)

// levelSeverity maps a level name to the lowest severity number of that level.
// ok is false for an unknown name.
func levelSeverity(level string) (int, bool) {
	switch strings.ToUpper(level) {
	case "TRACE":
		return severityTrace, true
	case "DEBUG":
		return severityDebug, true
	case "INFO":
		return severityInfo, true
	case "WARN", "WARNING":
		return severityWarn, true
	case "ERROR":
		return severityError, true
	case "FATAL":
		return severityFatal, true
	}
	return 0, false
}

// severityLevel names the level of an OpenTelemetry severity number, using
// the four levels of the model (TRACE folds into DEBUG, FATAL into ERROR).
func severityLevel(n int) string {
	switch {
	case n >= severityError:
		return "ERROR"
	case n >= severityWarn:
		return "WARN"
	case n >= severityInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

// newLogRow validates l into r, like newSpanRow. The severity number wins over the level name;
// without either the record is INFO (severity 9); an unknown level name
// with no severity number is also INFO.
func newLogRow(l *LogRecord, r *logRow, arena *jsonArena) error {
	var err error
	if l.Time.IsZero() {
		return invalid("time", "must be set")
	}
	if l.TraceID != "" {
		if r.traceID, err = decodeID("trace_id", l.TraceID, 16); err != nil {
			return err
		}
	}
	if l.SpanID != "" {
		if r.spanID, err = decodeID("span_id", l.SpanID, 8); err != nil {
			return err
		}
	}
	if l.SeverityNumber < 0 || l.SeverityNumber > severityMax {
		return invalid("severity_number", "got %d, want 0-%d", l.SeverityNumber, severityMax)
	}
	r.severity = l.SeverityNumber
	if r.severity == 0 {
		n, ok := levelSeverity(l.Level)
		if !ok {
			n = severityInfo
		}
		r.severity = n
	}
	r.level = severityLevel(r.severity)
	if err := marshalAttrs("attributes", l.Attributes, &r.attrs, arena); err != nil {
		return err
	}
	r.timeNs = l.Time.UnixNano()
	r.service = l.Service
	r.instance = l.Instance
	r.body = l.Body
	r.requestID = l.RequestID
	return nil
}
