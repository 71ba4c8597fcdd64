package console

import "testing"

func TestSafeNext(t *testing.T) {
	tests := []struct {
		name, next, want string
	}{
		{"empty", "", "/"},
		{"local path", "/traces?status=error", "/traces?status=error"},
		{"absolute URL", "https://evil.example/", "/"},
		{"scheme-relative", "//evil.example/x", "/"},
		{"backslash trick", "/\\evil.example", "/"},
		{"relative", "traces", "/"},
		{"header injection", "/x\r\nSet-Cookie: a=b", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SafeNext(tt.next); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
