package store

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

func TestAppendAttrsJSONMatchesEncodingJSON(t *testing.T) {
	type point struct{ X, Y int }
	tests := []struct {
		name string
		m    map[string]any
	}{
		{"empty", map[string]any{}},
		{"ingest types", map[string]any{
			"http.request.method": "GET", "http.response.status_code": int64(200), "ratio": 0.25,
			"sampled": true, "missing": nil, "list": []any{"a", int64(1), 2.5, false, nil},
			"nested": map[string]any{"b": "x", "a": []any{map[string]any{"z": int64(-1)}}},
		}},
		{"escapes", map[string]any{
			"quote\"back\\slash": "tab\tnl\ncr\rbs\bff\fnul\x00esc\x1b",
			"html":               "<script>&amp;</script>", "separators": "a\u2028b\u2029c",
			"invalid utf8": "a\xffb\xc3", "unicode": "żółw 🐢 日本",
		}},
		{"floats", map[string]any{
			"zero": 0.0, "neg zero": math.Copysign(0, -1), "tiny": 1e-7, "small": 0.000001,
			"big": 1e21, "below big": 1e20, "third": 1.0 / 3, "neg": -123.456, "max": math.MaxFloat64,
			"smallest": math.SmallestNonzeroFloat64, "e-10": 2.5e-10,
		}},
		{"other types fall back", map[string]any{
			"int": 7, "int32": int32(-3), "uint": uint(9), "float32": float32(0.1), "struct": point{1, 2},
			"strings": []string{"a", "b"}, "raw": json.RawMessage(`{"k": 1}`), "nil list": []any(nil),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkAttrsJSON(t, tc.m)
		})
	}
}

func TestAppendAttrsJSONRejectsWhatEncodingJSONRejects(t *testing.T) {
	tests := []struct {
		name string
		m    map[string]any
	}{
		{"NaN", map[string]any{"x": math.NaN()}},
		{"infinity nested", map[string]any{"x": []any{math.Inf(-1)}}},
		{"channel", map[string]any{"x": make(chan int)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := json.Marshal(tc.m); err == nil {
				t.Fatal("json.Marshal: got no error, want one")
			}
			if got, err := appendAttrsJSON(nil, tc.m); err == nil {
				t.Errorf("got %s, want an error", got)
			}
		})
	}
}

func checkAttrsJSON(t *testing.T, m map[string]any) {
	t.Helper()
	want, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	prefix := []byte("prefix")
	got, err := appendAttrsJSON(prefix, m)
	if err != nil {
		t.Fatalf("appendAttrsJSON: %v", err)
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("got %q, want it to start with the prefix", got)
	}
	if got = got[len(prefix):]; !bytes.Equal(got, want) {
		t.Errorf("got %s, want %s", got, want)
	}
}

func FuzzAppendAttrsJSON(f *testing.F) {
	f.Add("http.route", "/api/orders/:id", "peer", "<a&b>", int64(200), 0.5, true)
	f.Add("", "", "\x00", "\xff\u2028", int64(-1), 1e-7, false)
	f.Add("k", "v", "k", "w", int64(math.MaxInt64), 1e21, true)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, n int64, x float64, b bool) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			x = 0
		}
		m := map[string]any{
			k1: v1, k2 + ".n": n, k2 + ".x": x, "b": b,
			"nested": map[string]any{v1: []any{v2, n, x, b, nil}, k2: map[string]any{k1: v2}},
		}
		checkAttrsJSON(t, m)
	})
}
