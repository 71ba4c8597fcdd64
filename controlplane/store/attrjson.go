package store

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// appendAttrsJSON appends the JSON encoding of m to dst. Its output is
// byte for byte what json.Marshal gives (keys sorted, HTML characters
// escaped, invalid UTF-8 replaced), checked by FuzzAppendAttrsJSON, but it
// skips reflection for the value types ingest produces (string, bool,
// int64, float64, nil, []any, map[string]any). Other types go through
// json.Marshal. Encoding attributes was a fifth of the CPU of the whole
// OTLP ingest path with json.Marshal.
func appendAttrsJSON(dst []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(dst, "null"...), nil
	}
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		var err error
		if dst, err = appendJSONValue(dst, m[k]); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

func appendJSONValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendJSONString(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			break // json.Marshal reports the error
		}
		return appendJSONFloat(dst, x), nil
	case map[string]any:
		return appendAttrsJSON(dst, x)
	case []any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSONValue(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(dst, b...), nil
}

// appendJSONFloat formats f as encoding/json does: like ES6 number to
// string, shortest representation, exponent form only for very small or
// large magnitudes, without a leading zero in the exponent.
func appendJSONFloat(dst []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-07 -> e-7
		n := len(dst)
		if n-start >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendJSONString appends s as a JSON string (see wire.AppendJSONString).
func appendJSONString(dst []byte, s string) []byte { return wire.AppendJSONString(dst, s) }
