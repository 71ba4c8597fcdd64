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
