package tracebackend

import (
	"os"
	"path/filepath"
	"testing"
)

func addSeeds(f *testing.F, pattern string) {
	f.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", pattern))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzDecodeJaeger: any answer maps to spans or an error, never a panic.
func FuzzDecodeJaeger(f *testing.F) {
	addSeeds(f, "jaeger_*.json")
	f.Add([]byte(`{"data":[{"spans":[{"traceID":"zz","spanID":"","startTime":-1,"duration":-5,"tags":[{"key":"x","type":"int64","value":"nope"}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		spans, err := DecodeJaeger(body)
		if err != nil && spans != nil {
			t.Errorf("got spans with error %v", err)
		}
	})
}

// FuzzDecodeTempo: any answer maps to spans or an error, never a panic.
func FuzzDecodeTempo(f *testing.F) {
	addSeeds(f, "tempo_*.json")
	f.Add([]byte(`{"batches":[{"scopeSpans":[{"spans":[{"traceId":"AAAA","spanId":42}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		spans, err := DecodeTempo(body)
		if err != nil && spans != nil {
			t.Errorf("got spans with error %v", err)
		}
	})
}

// FuzzDecodeJaegerSearch: any search answer maps to summaries or an
// error, never a panic.
func FuzzDecodeJaegerSearch(f *testing.F) {
	addSeeds(f, "jaeger_*.json")
	f.Add([]byte(`{"data":[{"traceID":"1","spans":[{"traceID":"1","spanID":"2","references":[{"refType":"CHILD_OF","traceID":"1","spanID":"3"}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sums, err := DecodeJaegerSearch(body)
		if err != nil && sums != nil {
			t.Errorf("got summaries with error %v", err)
		}
		for _, s := range sums {
			if s.SpanCount == 0 || s.Duration < 0 {
				t.Errorf("summary %+v: want spans and a duration >= 0", s)
			}
		}
	})
}

// FuzzDecodeTempoSearch: any search answer maps to summaries or an
// error, never a panic.
func FuzzDecodeTempoSearch(f *testing.F) {
	addSeeds(f, "tempo_search*.json")
	f.Add([]byte(`{"traces":[{"traceID":"ab","startTimeUnixNano":12,"durationMs":4294967295,"serviceStats":{"a,b":{"spanCount":-1}}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sums, err := DecodeTempoSearch(body)
		if err != nil && sums != nil {
			t.Errorf("got summaries with error %v", err)
		}
		for _, s := range sums {
			if len(s.TraceID) != 32 || s.Duration < 0 {
				t.Errorf("summary %+v: want a 32-digit trace ID and a duration >= 0", s)
			}
		}
	})
}
