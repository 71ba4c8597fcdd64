package loki

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// FuzzDecodeQueryRange: any answer decodes to records or an error
// wrapping ErrQuery, never a panic.
func FuzzDecodeQueryRange(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "query_range_*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"status":"success","data":{"resultType":"streams","result":[{"stream":null,"values":[["1","x",null]]}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := DecodeQueryRange(body)
		if err != nil && recs != nil {
			t.Errorf("got records %v with error %v, want one or the other", recs, err)
		}
	})
}

// FuzzLogQL: whatever the service, level, text and IDs, the query is one
// stream selector plus the pipeline the filter asks for, every quoted
// part unquoting to the filter's value, or ErrUnsupportedFilter.
func FuzzLogQL(f *testing.F) {
	f.Add("orders", "WARN", "timeout", "req-1", "4bf92f3577b34da6a3ce929d0e0e4736")
	f.Add("", "", "", "", "")
	f.Add(`a"}|~".*`, "info", "\"} |= `x` | line_format \"{{.}}\"\\", `r"\`, "\n")
	f.Add("svc", "FATAL", "(?i).*[", "", "")
	f.Add("\xff", "debug", "\xfe", "", "")
	f.Fuzz(func(t *testing.T, service, level, query, requestID, traceID string) {
		lf := store.LogFilter{Service: service, Level: level, Query: query, RequestID: requestID, TraceID: traceID}
		q, err := LogQL(lf)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedFilter) {
				t.Fatalf("got %v, want nil or ErrUnsupportedFilter", err)
			}
			return
		}
		checkLogQL(t, q, lf)
		if query != "" && isASCII(query) {
			for _, line := range []string{query, strings.ToUpper(query), strings.ToLower(query), "x" + query + "y"} {
				if !lineFilterMatches(t, lf, line) {
					t.Errorf("query %s: text %q not found in %q", q, query, line)
				}
			}
		}
	})
}
