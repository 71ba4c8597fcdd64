package agent

import (
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

const hexDigits = "0123456789abcdef"

// hexEncode writes src as lower-case hex into dst and returns it.
func hexEncode(dst, src []byte) []byte {
	for i, v := range src {
		dst[2*i] = hexDigits[v>>4]
		dst[2*i+1] = hexDigits[v&0x0f]
	}
	return dst[:2*len(src)]
}

// appendJSONAttr appends ,"key":value for a flattened, resolved attribute.
func appendJSONAttr(b []byte, a slog.Attr) []byte {
	b = append(b, ',')
	b = appendJSONString(b, a.Key)
	b = append(b, ':')
	return appendJSONValue(b, a.Value)
}

func appendJSONValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendJSONString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return appendJSONString(b, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return appendJSONString(b, v.Duration().String())
	case slog.KindTime:
		b = append(b, '"')
		b = v.Time().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	default:
		return appendJSONString(b, v.String())
	}
}

// appendJSONString appends s as a JSON string (see wire.AppendJSONString).
func appendJSONString(b []byte, s string) []byte { return wire.AppendJSONString(b, s) }
