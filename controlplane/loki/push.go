package loki

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// Label and structured metadata names Pilothouse writes to Loki.
const (
	LabelService = "service"
	LabelLevel   = "level"

	MetaRequestID = "request_id"
	MetaTraceID   = "trace_id"
	MetaSpanID    = "span_id"
	MetaInstance  = "instance"
)

// unknownService labels records that carry no service name.
const unknownService = "unknown"

// pushEntry is one line of a stream.
type pushEntry struct {
	time  time.Time
	line  string
	meta  [4][2]string // name, value; the first nmeta are set
	nmeta int
}

// pushStream is a label set and its lines.
type pushStream struct {
	labels  string
	entries []pushEntry
}

// streamKey is a stream's label values as the record carries them.
type streamKey struct{ service, level string }

// streamsOf groups records into streams keyed by service and level, in a
// stable order (first appearance).
func streamsOf(logs []store.LogRecord) []pushStream {
	index := make(map[streamKey]int, 4)
	var streams []pushStream
	for i := range logs {
		r := &logs[i]
		key := streamKey{r.Service, r.Level}
		n, ok := index[key]
		if !ok {
			n = len(streams)
			index[key] = n
			streams = append(streams, pushStream{labels: labelsOf(r.Service, r.Level)})
		}
		streams[n].entries = append(streams[n].entries, entryOf(r))
	}
	return streams
}

// labelsOf renders a stream selector: {level="info", service="orders"}.
func labelsOf(svc, level string) string {
	if svc == "" {
		svc = unknownService
	}
	level = strings.ToLower(level)
	if level == "" {
		level = "info"
	}
	// Names in sorted order, as Loki canonicalises them.
	return "{" + LabelLevel + "=" + strconv.Quote(level) + ", " + LabelService + "=" + strconv.Quote(svc) + "}"
}

func entryOf(r *store.LogRecord) pushEntry {
	e := pushEntry{time: r.Time, line: r.Body}
	for _, kv := range [4][2]string{
		{MetaRequestID, r.RequestID},
		{MetaTraceID, r.TraceID},
		{MetaSpanID, r.SpanID},
		{MetaInstance, r.Instance},
	} {
		if kv[1] != "" {
			e.meta[e.nmeta] = kv
			e.nmeta++
		}
	}
	return e
}

// encodePush marshals streams as a Loki logproto.PushRequest:
//
//	PushRequest   { repeated Stream streams = 1; }
//	Stream        { string labels = 1; repeated Entry entries = 2; }
//	Entry         { Timestamp timestamp = 1; string line = 2; repeated LabelPair structuredMetadata = 3; }
//	LabelPair     { string name = 1; string value = 2; }
//	Timestamp     { int64 seconds = 1; int32 nanos = 2; }
func encodePush(dst []byte, streams []pushStream) []byte {
	for _, s := range streams {
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(streamSize(s)))
		dst = appendString(dst, 1, s.labels)
		for _, e := range s.entries {
			dst = protowire.AppendTag(dst, 2, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(entrySize(e)))
			dst = appendEntry(dst, e)
		}
	}
	return dst
}

func appendString(dst []byte, num protowire.Number, s string) []byte {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendString(dst, s)
}

func stringSize(num protowire.Number, s string) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func timestampParts(t time.Time) (sec int64, nanos int32) {
	return t.Unix(), int32(t.Nanosecond())
}

func timestampSize(t time.Time) int {
	sec, nanos := timestampParts(t)
	n := 0
	if sec != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(sec))
	}
	if nanos != 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(nanos))
	}
	return n
}

func pairSize(kv [2]string) int { return stringSize(1, kv[0]) + stringSize(2, kv[1]) }

func entrySize(e pushEntry) int {
	n := protowire.SizeTag(1) + protowire.SizeBytes(timestampSize(e.time))
	n += stringSize(2, e.line)
	for _, kv := range e.meta[:e.nmeta] {
		n += protowire.SizeTag(3) + protowire.SizeBytes(pairSize(kv))
	}
	return n
}

func streamSize(s pushStream) int {
	n := stringSize(1, s.labels)
	for _, e := range s.entries {
		n += protowire.SizeTag(2) + protowire.SizeBytes(entrySize(e))
	}
	return n
}

func appendEntry(dst []byte, e pushEntry) []byte {
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(timestampSize(e.time)))
	sec, nanos := timestampParts(e.time)
	if sec != 0 {
		dst = protowire.AppendTag(dst, 1, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(sec))
	}
	if nanos != 0 {
		dst = protowire.AppendTag(dst, 2, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(nanos))
	}
	dst = appendString(dst, 2, e.line)
	for _, kv := range e.meta[:e.nmeta] {
		dst = protowire.AppendTag(dst, 3, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(pairSize(kv)))
		dst = appendString(dst, 1, kv[0])
		dst = appendString(dst, 2, kv[1])
	}
	return dst
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
