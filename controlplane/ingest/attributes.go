package ingest

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
)

// Limits that keep one misbehaving client from blowing up memory or the
// store. Values beyond them are truncated or dropped, never rejected.
const (
	// MaxAttributes is the number of attributes kept per span, event or
	// log record; further ones are dropped.
	MaxAttributes = 128
	// MaxAttributeValueBytes truncates long string and bytes values.
	MaxAttributeValueBytes = 4 << 10
	// MaxAttributeKeyBytes truncates long attribute keys.
	MaxAttributeKeyBytes = 256
	// MaxAttributeBytes is the total budget of attribute string bytes per
	// span, event or log record; attributes past it are dropped.
	MaxAttributeBytes = 64 << 10
	// MaxArrayValues caps the elements kept of an array or kvlist value.
	MaxArrayValues = 128
	// MaxValueDepth caps nesting of arrays and kvlists.
	MaxValueDepth = 4
	// MaxEvents is the number of events kept per span.
	MaxEvents = 128
	// MaxNameBytes truncates span names, event names, service and
	// instance names.
	MaxNameBytes = 256
	// MaxLogBodyBytes truncates log bodies.
	MaxLogBodyBytes = 16 << 10
)

// truncatedValue stands in for a value nested deeper than MaxValueDepth.
const truncatedValue = "[truncated]"

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut > n-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// attrConverter turns OTLP key/values into the store's map[string]any,
// spending a byte budget so one record cannot carry unbounded data.
type attrConverter struct {
	budget int
	intern *interner // nil: no interning
}

func newAttrConverter() attrConverter { return attrConverter{budget: MaxAttributeBytes} }

// addTo converts kvs into dst (allocated on first use) and returns it.
func (c *attrConverter) addTo(dst map[string]any, kvs []*commonpb.KeyValue) map[string]any {
	for _, kv := range kvs {
		if kv == nil || c.budget <= 0 {
			continue
		}
		if len(dst) >= MaxAttributes {
			break
		}
		if dst == nil {
			dst = make(map[string]any, min(len(kvs), MaxAttributes))
		}
		key := truncate(kv.Key, MaxAttributeKeyBytes)
		c.budget -= len(key)
		dst[key] = c.value(kv.Value, 0)
	}
	return dst
}

// value converts one AnyValue into a JSON-friendly Go value: string, bool,
// int64, float64 (NaN and infinities become strings), []any or
// map[string]any. Bytes become base64 strings.
func (c *attrConverter) value(v *commonpb.AnyValue, depth int) any {
	if v == nil {
		return nil
	}
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return c.str(x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		f := x.DoubleValue
		if math.IsNaN(f) || math.IsInf(f, 0) {
			// JSON cannot carry these; keep them readable.
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return f
	case *commonpb.AnyValue_BytesValue:
		b := x.BytesValue
		if len(b) > MaxAttributeValueBytes {
			b = b[:MaxAttributeValueBytes]
		}
		return c.str(base64.StdEncoding.EncodeToString(b))
	case *commonpb.AnyValue_ArrayValue:
		if depth >= MaxValueDepth {
			return truncatedValue
		}
		vals := x.ArrayValue.GetValues()
		out := make([]any, 0, min(len(vals), MaxArrayValues))
		for _, e := range vals {
			if len(out) >= MaxArrayValues || c.budget <= 0 {
				break
			}
			out = append(out, c.value(e, depth+1))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		if depth >= MaxValueDepth {
			return truncatedValue
		}
		vals := x.KvlistValue.GetValues()
		out := make(map[string]any, min(len(vals), MaxArrayValues))
		for _, kv := range vals {
			if kv == nil {
				continue
			}
			if len(out) >= MaxArrayValues || c.budget <= 0 {
				break
			}
			key := truncate(kv.Key, MaxAttributeKeyBytes)
			c.budget -= len(key)
			out[key] = c.value(kv.Value, depth+1)
		}
		return out
	default:
		// Unset value, or string_value_strindex (profiles only).
		return nil
	}
}

func (c *attrConverter) str(s string) string {
	s = truncate(s, min(MaxAttributeValueBytes, max(c.budget, 0)))
	c.budget -= len(s)
	return s
}

// bodyString renders a log body as text: strings as they are, other
// values in their JSON form.
func bodyString(v *commonpb.AnyValue) string {
	if v == nil {
		return ""
	}
	if s, ok := v.Value.(*commonpb.AnyValue_StringValue); ok {
		return truncate(s.StringValue, MaxLogBodyBytes)
	}
	c := attrConverter{budget: MaxLogBodyBytes}
	val := c.value(v, 0)
	if val == nil {
		return ""
	}
	return truncate(jsonText(val), MaxLogBodyBytes)
}

// findString returns the string form of attribute key in kvs.
func findString(kvs []*commonpb.KeyValue, key string) (string, bool) {
	for _, kv := range kvs {
		if kv == nil || kv.Key != key {
			continue
		}
		return anyString(kv.Value)
	}
	return "", false
}

// anyString returns a scalar value as a string; for an array, its first
// element (HTTP header attributes are string arrays).
func anyString(v *commonpb.AnyValue) (string, bool) {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue, true
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10), true
	case *commonpb.AnyValue_ArrayValue:
		if vals := x.ArrayValue.GetValues(); len(vals) > 0 {
			return anyString(vals[0])
		}
	}
	return "", false
}

// findInt returns attribute key in kvs as an int, accepting an int value
// or a decimal string.
func findInt(kvs []*commonpb.KeyValue, key string) (int, bool) {
	for _, kv := range kvs {
		if kv == nil || kv.Key != key {
			continue
		}
		switch x := kv.Value.GetValue().(type) {
		case *commonpb.AnyValue_IntValue:
			if x.IntValue < math.MinInt32 || x.IntValue > math.MaxInt32 {
				return 0, false
			}
			return int(x.IntValue), true
		case *commonpb.AnyValue_DoubleValue:
			if x.DoubleValue < math.MinInt32 || x.DoubleValue > math.MaxInt32 || math.IsNaN(x.DoubleValue) {
				return 0, false
			}
			return int(x.DoubleValue), true
		case *commonpb.AnyValue_StringValue:
			n, err := strconv.Atoi(x.StringValue)
			return n, err == nil
		}
		return 0, false
	}
	return 0, false
}

// jsonText encodes a converted value as JSON. Converted values never hold
// NaN or infinities, so encoding cannot fail; on the impossible error the
// value is dropped.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
