package ingest

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file decodes OTLP protobuf requests straight from the wire format
// into store rows, without building the generated message tree first:
// about a quarter of the allocations of proto.Unmarshal plus mapping. It
// follows protobuf semantics where they change the result (the last
// scalar wins, repeated occurrences of a message field merge, fields of
// an unexpected wire type are skipped as unknown) and produces exactly
// what the generated-types path does; FuzzTracesProtoPathsAgree and
// FuzzLogsProtoPathsAgree check that.
// It is lenient in one way: fields it does not use (links, scopes,
// schema URLs) are skipped without validating their contents.

var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// interner shares the strings that repeat across the items of one request
// (attribute keys, service names, routes, methods): one allocation per
// distinct value instead of one per occurrence. It lives for one request
// and is bounded.
type interner struct {
	m   map[string]string
	ids map[string]string // valid hex IDs only
}

const (
	maxInternedLen     = 64
	maxInternedStrings = 4096
)

func newInterner() *interner {
	return &interner{m: make(map[string]string, 64), ids: make(map[string]string, 16)}
}

func (in *interner) str(b []byte) string {
	if in == nil || len(b) > maxInternedLen {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in.m) < maxInternedStrings {
		in.m[s] = s
	}
	return s
}

// wireFields iterates over the fields of one message.
type wireFields struct {
	b   []byte
	err error
}

// next returns the next field's number, type and value bytes (for
// varint and fixed types the encoded value; for bytes the payload).
func (f *wireFields) next() (num protowire.Number, typ protowire.Type, val []byte, ok bool) {
	if len(f.b) == 0 || f.err != nil {
		return 0, 0, nil, false
	}
	num, typ, n := protowire.ConsumeTag(f.b)
	if n < 0 {
		f.err = protowire.ParseError(n)
		return 0, 0, nil, false
	}
	f.b = f.b[n:]
	if typ == protowire.BytesType {
		v, m := protowire.ConsumeBytes(f.b)
		if m < 0 {
			f.err = protowire.ParseError(m)
			return 0, 0, nil, false
		}
		f.b = f.b[m:]
		return num, typ, v, true
	}
	m := protowire.ConsumeFieldValue(num, typ, f.b)
	if m < 0 {
		f.err = protowire.ParseError(m)
		return 0, 0, nil, false
	}
	val, f.b = f.b[:m], f.b[m:]
	return num, typ, val, true
}

func varint(b []byte) uint64 {
	v, _ := protowire.ConsumeVarint(b)
	return v
}

func fixed64(b []byte) uint64 {
	v, _ := protowire.ConsumeFixed64(b)
	return v
}

func utf8String(b []byte) ([]byte, error) {
	if !utf8.Valid(b) {
		return nil, errInvalidUTF8
	}
	return b, nil
}

// AnyValue oneof members.
type anyKind uint8

const (
	anyNone anyKind = iota
	anyStr
	anyBoolean
	anyInt
	anyDouble
	anyArray
	anyKVList
	anyBytes
	anyOther // string_value_strindex
)

// wireAny accumulates one AnyValue, possibly from several occurrences
// (which protobuf merges).
type wireAny struct {
	kind anyKind
	raw  []byte   // string or bytes value
	num  uint64   // bool, int or double bits
	msgs [][]byte // occurrences of the array or kvlist message
}

func (a *wireAny) feed(b []byte) error {
	f := wireFields{b: b}
	for {
		num, typ, v, ok := f.next()
		if !ok {
			return f.err
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			s, err := utf8String(v)
			if err != nil {
				return err
			}
			*a = wireAny{kind: anyStr, raw: s}
		case num == 2 && typ == protowire.VarintType:
			*a = wireAny{kind: anyBoolean, num: varint(v)}
		case num == 3 && typ == protowire.VarintType:
			*a = wireAny{kind: anyInt, num: varint(v)}
		case num == 4 && typ == protowire.Fixed64Type:
			*a = wireAny{kind: anyDouble, num: fixed64(v)}
		case num == 5 && typ == protowire.BytesType:
			a.setMessage(anyArray, v)
		case num == 6 && typ == protowire.BytesType:
			a.setMessage(anyKVList, v)
		case num == 7 && typ == protowire.BytesType:
			*a = wireAny{kind: anyBytes, raw: v}
		case num == 8 && typ == protowire.VarintType:
			*a = wireAny{kind: anyOther}
		}
	}
}

// setMessage sets a message member of the oneof, merging with an earlier
// occurrence of the same member.
func (a *wireAny) setMessage(kind anyKind, v []byte) {
	if a.kind != kind {
		*a = wireAny{kind: kind}
	}
	a.msgs = append(a.msgs, v)
}

// wireKV is one decoded KeyValue.
type wireKV struct {
	key []byte
	val wireAny
}

func parseKV(b []byte) (wireKV, error) {
	var kv wireKV
	f := wireFields{b: b}
	for {
		num, typ, v, ok := f.next()
		if !ok {
			return kv, f.err
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			s, err := utf8String(v)
			if err != nil {
				return kv, err
			}
			kv.key = s
		case num == 2 && typ == protowire.BytesType:
			if err := kv.val.feed(v); err != nil {
				return kv, err
			}
		}
	}
}

// appendKV parses a KeyValue and appends it to kvs.
func appendKV(kvs []wireKV, b []byte) ([]wireKV, error) {
	kv, err := parseKV(b)
	if err != nil {
		return kvs, err
	}
	return append(kvs, kv), nil
}

// forEachElement calls fn with each element of the merged array or
// kvlist messages (field 1 of ArrayValue and KeyValueList).
func (a *wireAny) forEachElement(fn func(elem []byte) (more bool, err error)) error {
	for _, m := range a.msgs {
		f := wireFields{b: m}
		for {
			num, typ, v, ok := f.next()
			if !ok {
				if f.err != nil {
					return f.err
				}
				break
			}
			if num != 1 || typ != protowire.BytesType {
				continue
			}
			more, err := fn(v)
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// wireValue mirrors value for a wire-decoded AnyValue.
func (c *attrConverter) wireValue(a *wireAny, depth int) (any, error) {
	switch a.kind {
	case anyStr:
		return c.str(c.intern.str(a.raw)), nil
	case anyBoolean:
		return a.num != 0, nil
	case anyInt:
		return int64(a.num), nil
	case anyDouble:
		f := math.Float64frombits(a.num)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64), nil
		}
		return f, nil
	case anyBytes:
		b := a.raw
		if len(b) > MaxAttributeValueBytes {
			b = b[:MaxAttributeValueBytes]
		}
		return c.str(base64Std(b)), nil
	case anyArray:
		if depth >= MaxValueDepth {
			return truncatedValue, nil
		}
		out := make([]any, 0, 4)
		err := a.forEachElement(func(elem []byte) (bool, error) {
			if len(out) >= MaxArrayValues || c.budget <= 0 {
				return false, nil
			}
			var e wireAny
			if err := e.feed(elem); err != nil {
				return false, err
			}
			v, err := c.wireValue(&e, depth+1)
			out = append(out, v)
			return true, err
		})
		return out, err
	case anyKVList:
		if depth >= MaxValueDepth {
			return truncatedValue, nil
		}
		out := make(map[string]any, 4)
		err := a.forEachElement(func(elem []byte) (bool, error) {
			if len(out) >= MaxArrayValues || c.budget <= 0 {
				return false, nil
			}
			kv, err := parseKV(elem)
			if err != nil {
				return false, err
			}
			key := truncate(c.intern.str(kv.key), MaxAttributeKeyBytes)
			c.budget -= len(key)
			v, err := c.wireValue(&kv.val, depth+1)
			out[key] = v
			return true, err
		})
		return out, err
	default:
		return nil, nil
	}
}

// addWire mirrors addTo for wire-decoded attributes.
func (c *attrConverter) addWire(dst map[string]any, kvs []wireKV) (map[string]any, error) {
	for i := range kvs {
		if c.budget <= 0 {
			continue
		}
		if len(dst) >= MaxAttributes {
			break
		}
		if dst == nil {
			dst = make(map[string]any, min(len(kvs), MaxAttributes))
		}
		key := truncate(c.intern.str(kvs[i].key), MaxAttributeKeyBytes)
		c.budget -= len(key)
		v, err := c.wireValue(&kvs[i].val, 0)
		if err != nil {
			return dst, err
		}
		dst[key] = v
	}
	return dst, nil
}

// wireFind returns the first attribute named key.
func wireFind(kvs []wireKV, key string) (*wireAny, bool) {
	for i := range kvs {
		if string(kvs[i].key) == key {
			return &kvs[i].val, true
		}
	}
	return nil, false
}

// wireString mirrors findString.
func wireString(in *interner, kvs []wireKV, key string) (string, bool) {
	v, ok := wireFind(kvs, key)
	if !ok {
		return "", false
	}
	return wireAnyString(in, v)
}

func wireAnyString(in *interner, v *wireAny) (string, bool) {
	switch v.kind {
	case anyStr:
		return in.str(v.raw), true
	case anyInt:
		return strconv.FormatInt(int64(v.num), 10), true
	case anyArray:
		var (
			s  string
			ok bool
		)
		_ = v.forEachElement(func(elem []byte) (bool, error) {
			var e wireAny
			if err := e.feed(elem); err != nil {
				return false, err
			}
			s, ok = wireAnyString(in, &e)
			return false, nil
		})
		return s, ok
	}
	return "", false
}

// wireInt mirrors findInt.
func wireInt(kvs []wireKV, key string) (int, bool) {
	v, ok := wireFind(kvs, key)
	if !ok {
		return 0, false
	}
	switch v.kind {
	case anyInt:
		n := int64(v.num)
		if n < math.MinInt32 || n > math.MaxInt32 {
			return 0, false
		}
		return int(n), true
	case anyDouble:
		f := math.Float64frombits(v.num)
		if f < math.MinInt32 || f > math.MaxInt32 || math.IsNaN(f) {
			return 0, false
		}
		return int(f), true
	case anyStr:
		n, err := strconv.Atoi(string(v.raw))
		return n, err == nil
	}
	return 0, false
}

func wireRequestID(in *interner, kvs []wireKV) string {
	if s, ok := wireString(in, kvs, attrRequestID); ok && s != "" {
		return truncate(s, MaxNameBytes)
	}
	if s, ok := wireString(in, kvs, attrRequestIDHdr); ok {
		return truncate(s, MaxNameBytes)
	}
	return ""
}

// wireResource merges the occurrences of a Resource message.
func wireResource(in *interner, occurrences [][]byte) (resourceInfo, []wireKV, error) {
	var attrs []wireKV
	for _, b := range occurrences {
		f := wireFields{b: b}
		for {
			num, typ, v, ok := f.next()
			if !ok {
				if f.err != nil {
					return resourceInfo{}, nil, f.err
				}
				break
			}
			if num == 1 && typ == protowire.BytesType {
				var err error
				if attrs, err = appendKV(attrs, v); err != nil {
					return resourceInfo{}, nil, err
				}
			}
		}
	}
	info := resourceInfo{service: UnknownService}
	if s, ok := wireString(in, attrs, attrServiceName); ok && s != "" {
		info.service = truncate(s, MaxNameBytes)
	}
	if s, ok := wireString(in, attrs, attrInstanceID); ok {
		info.instance = truncate(s, MaxNameBytes)
	}
	if s, ok := wireString(in, attrs, attrServiceVersion); ok {
		info.version = truncate(s, MaxNameBytes)
	}
	return info, attrs, nil
}

// splitResourceMessage returns the resource occurrences and the
// scope-level messages (field 2) of a ResourceSpans or ResourceLogs.
func splitResourceMessage(b []byte, scopes [][]byte) (resource, scopesOut [][]byte, err error) {
	f := wireFields{b: b}
	for {
		num, typ, v, ok := f.next()
		if !ok {
			return resource, scopes, f.err
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			resource = append(resource, v)
		case num == 2 && typ == protowire.BytesType:
			scopes = append(scopes, v)
		}
	}
}

// forEachItem calls fn with every field 2 (spans or log_records) of a
// ScopeSpans or ScopeLogs message.
func forEachItem(scope []byte, fn func(i int, item []byte) error) error {
	f := wireFields{b: scope}
	i := 0
	for {
		num, typ, v, ok := f.next()
		if !ok {
			return f.err
		}
		if num == 2 && typ == protowire.BytesType {
			if err := fn(i, v); err != nil {
				return err
			}
			i++
		}
	}
}

// forEachResource calls fn with every field 1 of an export request.
func forEachResource(body []byte, fn func(i int, rs []byte) error) error {
	f := wireFields{b: body}
	i := 0
	for {
		num, typ, v, ok := f.next()
		if !ok {
			return f.err
		}
		if num == 1 && typ == protowire.BytesType {
			if err := fn(i, v); err != nil {
				return err
			}
			i++
		}
	}
}

func malformedProto(what string, err error) error {
	return fmt.Errorf("%w: protobuf %s: %w", ErrMalformed, what, err)
}

// errMalformedWire marks a wire error met while mapping (as opposed to an
// invalid item, which is rejected alone).
var errMalformedWire = errors.New("malformed")

type malformedWire struct{ err error }

func (m malformedWire) Error() string        { return m.err.Error() }
func (m malformedWire) Is(target error) bool { return target == errMalformedWire }
func (m malformedWire) Unwrap() error        { return m.err }

func unwrapMalformed(err error) error {
	var m malformedWire
	if errors.As(err, &m) {
		return m.err
	}
	return err
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func spanKindOf(v int32) tracepb.Span_SpanKind       { return tracepb.Span_SpanKind(v) }
func statusCodeOf(v int32) tracepb.Status_StatusCode { return tracepb.Status_StatusCode(v) }
func severityOf(v int32) logspb.SeverityNumber       { return logspb.SeverityNumber(v) }
func durationNs(ns uint64) time.Duration             { return time.Duration(ns) }

// hexID is the package hexID with the result interned: spans of one
// trace share their trace ID string.
func (in *interner) hexID(field string, id []byte, size int, optional bool) (string, error) {
	if len(id) != size || size > 16 {
		return hexID(field, id, size, optional)
	}
	var buf [32]byte
	hex.Encode(buf[:], id)
	s, ok := in.ids[string(buf[:2*size])]
	if ok {
		return s, nil
	}
	s, err := hexID(field, id, size, optional)
	if err == nil && len(in.ids) < maxInternedStrings {
		in.ids[s] = s
	}
	return s, err
}
