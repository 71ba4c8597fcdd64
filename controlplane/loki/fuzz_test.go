package loki

import (
	"os"
	"path/filepath"
	"testing"
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
