package ingest

import (
	"errors"
	"fmt"
	"strings"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// Log levels stored for a record.
const (
	LevelDebug = "DEBUG"
	LevelInfo  = "INFO"
	LevelWarn  = "WARN"
	LevelError = "ERROR"
)

// DecodeLogs decodes an uncompressed OTLP/HTTP logs export body, protobuf
// or OTLP/JSON according to contentType, into store log records. A record
// with neither time_unix_nano nor observed_time_unix_nano keeps the zero
// Time (the Handler stamps it with the receive time). Records with
// invalid trace or span IDs are left out and counted in Rejected. The
// error wraps ErrUnsupportedMediaType or ErrMalformed.
func DecodeLogs(body []byte, contentType string) ([]store.LogRecord, Rejected, error) {
	enc, err := encodingOf(contentType)
	if err != nil {
		return nil, Rejected{}, err
	}
	if enc == encodingProto {
		return decodeLogsWire(body)
	}
	req, err := logsFromJSON(body)
	if err != nil {
		return nil, Rejected{}, err
	}
	logs, rej := logsFromRequest(req)
	return logs, rej, nil
}

// decodeLogsGenerated is the protobuf path through the generated types:
// the reference decodeLogsWire is checked against.
func decodeLogsGenerated(body []byte) ([]store.LogRecord, Rejected, error) {
	req := &collogspb.ExportLogsServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		return nil, Rejected{}, fmt.Errorf("%w: protobuf ExportLogsServiceRequest: %w", ErrMalformed, err)
	}
	logs, rej := logsFromRequest(req)
	return logs, rej, nil
}

func logsFromRequest(req *collogspb.ExportLogsServiceRequest) ([]store.LogRecord, Rejected) {
	total := 0
	for _, rl := range req.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			total += len(sl.GetLogRecords())
		}
	}
	out := make([]store.LogRecord, 0, total)
	var rej rejections
	for ri, rl := range req.GetResourceLogs() {
		res := newResourceInfo(rl.GetResource())
		for si, sl := range rl.GetScopeLogs() {
			for i, lr := range sl.GetLogRecords() {
				rec, err := mapLogRecord(lr, res)
				if err != nil {
					rej.add(func() string {
						return fmt.Sprintf("resourceLogs[%d].scopeLogs[%d].logRecords[%d]", ri, si, i)
					}, err)
					continue
				}
				out = append(out, rec)
			}
		}
	}
	return out, rej.result("log records")
}

var errNilLogRecord = errors.New("log record is null")

func mapLogRecord(lr *logspb.LogRecord, res resourceInfo) (store.LogRecord, error) {
	if lr == nil {
		return store.LogRecord{}, errNilLogRecord
	}
	traceID, err := hexID("traceId", lr.TraceId, 16, true)
	if err != nil {
		return store.LogRecord{}, err
	}
	spanID, err := hexID("spanId", lr.SpanId, 8, true)
	if err != nil {
		return store.LogRecord{}, err
	}
	ts := timeOrZero(lr.TimeUnixNano)
	if ts.IsZero() {
		ts = timeOrZero(lr.ObservedTimeUnixNano)
	}
	rec := store.LogRecord{
		Time:           ts,
		Service:        res.service,
		Instance:       res.instance,
		Level:          logLevel(lr.SeverityNumber, lr.SeverityText),
		SeverityNumber: int(lr.SeverityNumber),
		Body:           bodyString(lr.Body),
		TraceID:        traceID,
		SpanID:         spanID,
		RequestID:      requestID(lr.Attributes),
	}
	if rec.SeverityNumber < 0 || rec.SeverityNumber > 24 {
		rec.SeverityNumber = 0
	}
	conv := newAttrConverter()
	rec.Attributes = conv.addTo(nil, lr.Attributes)
	if res.version != "" {
		if rec.Attributes == nil {
			rec.Attributes = make(map[string]any, 1)
		}
		rec.Attributes[attrServiceVersion] = res.version
	}
	return rec, nil
}

// logLevel maps an OTLP severity number (1-4 TRACE, 5-8 DEBUG, 9-12 INFO,
// 13-16 WARN, 17-24 ERROR and FATAL) to a stored level, falling back to
// the severity text and then to INFO.
func logLevel(n logspb.SeverityNumber, text string) string {
	switch {
	case n >= 1 && n <= 8:
		return LevelDebug
	case n >= 9 && n <= 12:
		return LevelInfo
	case n >= 13 && n <= 16:
		return LevelWarn
	case n >= 17:
		return LevelError
	}
	t := strings.ToUpper(strings.TrimSpace(text))
	switch {
	case strings.HasPrefix(t, "TRACE"), strings.HasPrefix(t, "DEBUG"), t == "DBG":
		return LevelDebug
	case strings.HasPrefix(t, "WARN"):
		return LevelWarn
	case strings.HasPrefix(t, "ERR"), strings.HasPrefix(t, "FATAL"),
		strings.HasPrefix(t, "CRIT"), strings.HasPrefix(t, "PANIC"),
		strings.HasPrefix(t, "ALERT"), strings.HasPrefix(t, "EMERG"):
		return LevelError
	default:
		return LevelInfo
	}
}
