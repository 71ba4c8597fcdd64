package jsonbody

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type request struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags"`
	Inner struct {
		On bool `json:"on"`
	} `json:"inner"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int // 0: no error
		wantField  string
		wantCause  error
		wantText   string
	}{
		{name: "valid", body: `{"name":"a","count":2,"tags":["x"],"inner":{"on":true}}`},
		{name: "too large", body: `{"name":"` + strings.Repeat("a", 200) + `"}`, wantStatus: 413, wantCause: ErrTooLarge, wantText: "100 bytes"},
		{name: "empty", body: ``, wantStatus: 400, wantCause: ErrMalformed, wantText: "ends early"},
		{name: "truncated", body: `{"name":`, wantStatus: 400, wantCause: ErrMalformed, wantText: "not valid JSON"},
		{name: "syntax", body: `{name}`, wantStatus: 400, wantCause: ErrMalformed, wantText: "not valid JSON"},
		{name: "wrong type", body: `{"count":"two"}`, wantStatus: 400, wantField: "count", wantCause: ErrMalformed, wantText: "must be int"},
		{name: "nested wrong type", body: `{"inner":{"on":"yes"}}`, wantStatus: 400, wantField: "inner.on", wantCause: ErrMalformed},
		{name: "unknown field", body: `{"nmae":"a"}`, wantStatus: 400, wantField: "nmae", wantCause: ErrMalformed, wantText: "unknown field"},
		{name: "trailing data", body: `{"name":"a"} {"name":"b"}`, wantStatus: 400, wantCause: ErrMalformed, wantText: "after the JSON document"},
		{name: "trailing garbage", body: `{"name":"a"} }`, wantStatus: 400, wantCause: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			var dst request
			err := Decode(httptest.NewRecorder(), r, 100, &dst)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v (%T), want *Error", err, err)
			}
			if e.Status != tt.wantStatus || e.Field != tt.wantField || !errors.Is(err, tt.wantCause) {
				t.Errorf("got status %d field %q cause %v, want %d %q %v", e.Status, e.Field, errors.Unwrap(err), tt.wantStatus, tt.wantField, tt.wantCause)
			}
			if !strings.Contains(e.Message, tt.wantText) {
				t.Errorf("message %q: want it to contain %q", e.Message, tt.wantText)
			}
		})
	}
}

func TestParseForm(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
	}{
		{name: "valid", body: "a=1&b=2"},
		{name: "too large", body: "a=" + strings.Repeat("x", 200), wantStatus: 413},
		{name: "malformed", body: "a=%zz", wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			err := ParseForm(httptest.NewRecorder(), r, 100)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if got := AsError(err).Status; got != tt.wantStatus {
				t.Errorf("status: got %d (%v), want %d", got, err, tt.wantStatus)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"name":"a","tags":["b"]}`, `{"count":1e400}`, `[1,2]`, `{"inner":{"on":null}}`, `{"a":1}{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		var dst request
		err := Decode(httptest.NewRecorder(), r, 1<<10, &dst)
		if err == nil {
			return
		}
		e := AsError(err)
		if e.Status != 400 && e.Status != 413 {
			t.Fatalf("status %d for %q", e.Status, body)
		}
		if e.Message == "" {
			t.Fatalf("empty message for %q", body)
		}
	})
}
