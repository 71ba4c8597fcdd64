package wire

import (
	"encoding/json"
	"testing"
)

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	tests := []struct{ name, in string }{
		{name: "plain", in: "hello"},
		{name: "empty", in: ""},
		{name: "quotes and backslash", in: `say "hi" \ bye`},
		{name: "control characters", in: "a\nb\rc\td\x00e\x1f\b\f"},
		{name: "html", in: "<a href='x'>&</a>"},
		{name: "line separators", in: "x\u2028y\u2029z"},
		{name: "multibyte", in: "héllo wörld ✓ 日本"},
		{name: "invalid utf-8", in: "bad\xffbyte\xc3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if got := AppendJSONString(nil, tt.in); string(got) != string(want) {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

// FuzzAppendJSONString checks that every string encodes to JSON that
// decodes back to it (with invalid bytes replaced, as encoding/json does).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c\n", "<&>", "\u2028", "\xff\xfe", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendJSONString([]byte("prefix"), s)
		want, _ := json.Marshal(s)
		if string(got[len("prefix"):]) != string(want) {
			t.Fatalf("got %s, want %s", got[len("prefix"):], want)
		}
	})
}
