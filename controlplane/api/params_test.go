package api

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func TestParseTraceFilter(t *testing.T) {
	tests := []struct {
		name      string
		query     string
		wantField string
		check     func(t *testing.T, f any)
	}{
		{name: "empty", query: ""},
		{name: "all fields", query: "service=orders&route=/orders/:id&status=5xx&min_duration=250ms&request_id=r1&since=15m&until=2026-11-24T11:59:00Z&limit=10"},
		{name: "bad status", query: "status=broken", wantField: "status"},
		{name: "bad duration", query: "min_duration=fast", wantField: "min_duration"},
		{name: "negative duration", query: "min_duration=-1s", wantField: "min_duration"},
		{name: "limit too large", query: "limit=5000", wantField: "limit"},
		{name: "limit zero", query: "limit=0", wantField: "limit"},
		{name: "bad since", query: "since=yesterday", wantField: "since"},
		{name: "until before since", query: "since=2026-11-24T11:00:00Z&until=2026-11-24T10:00:00Z", wantField: "until"},
		{name: "huge value", query: "service=" + string(make([]byte, 600)), wantField: "service"},
		{name: "attributes", query: "attr=order_id%3D42&attr=user.id%3Du-1"},
		{name: "attribute without value", query: "attr=order_id", wantField: "attr"},
		{name: "attribute key", query: "attr=a%22b%3D1", wantField: "attr"},
		{name: "too many attributes", query: "attr=a%3D1&attr=b%3D1&attr=c%3D1&attr=d%3D1&attr=e%3D1", wantField: "attr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseTraceFilter(q, now)
			assertField(t, err, tt.wantField)
		})
	}
}

func TestParseTraceFilterValues(t *testing.T) {
	q, _ := url.ParseQuery("service=orders&status=ERROR&min_duration=250ms&since=15m&limit=10&attr=order_id%3D42")
	f, err := ParseTraceFilter(q, now)
	if err != nil {
		t.Fatal(err)
	}
	if f.Service != "orders" || f.Status != "error" || f.MinDuration != 250*time.Millisecond || f.Limit != 10 ||
		len(f.Attributes) != 1 || f.Attributes[0] != (store.AttributeMatch{Key: "order_id", Value: "42"}) {
		t.Errorf("got %+v", f)
	}
	if want := now.Add(-15 * time.Minute); !f.Since.Equal(want) {
		t.Errorf("since: got %s, want %s", f.Since, want)
	}
}

func TestParseLogFilter(t *testing.T) {
	tests := []struct {
		name      string
		query     string
		wantField string
	}{
		{name: "empty", query: ""},
		{name: "request and text", query: "request_id=abc&q=timeout&level=warn&service=orders"},
		{name: "trace id", query: "trace_id=4BF92F3577B34DA6A3CE929D0E0E4736"},
		{name: "short trace id", query: "trace_id=4bf92f", wantField: "trace_id"},
		{name: "bad level", query: "level=loud", wantField: "level"},
		{name: "bad cursor", query: "before=-3", wantField: "before"},
		{name: "unix since", query: "since=1764000000"},
		{name: "attribute", query: "attr=order_id%3D329&service=orders"},
		{name: "bad attribute", query: "attr=%3D329", wantField: "attr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			_, err := ParseLogFilter(q, now)
			assertField(t, err, tt.wantField)
		})
	}
}

func assertField(t *testing.T, err error, wantField string) {
	t.Helper()
	if wantField == "" {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return
	}
	var pe *ParamError
	if !errors.As(err, &pe) {
		t.Fatalf("got error %v, want a ParamError for %s", err, wantField)
	}
	if pe.Param != wantField {
		t.Errorf("got field %q, want %q", pe.Param, wantField)
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("service=orders&status=5xx&min_duration=1s&since=15m&limit=5")
	f.Add("trace_id=4bf92f3577b34da6a3ce929d0e0e4736&level=error&before=10")
	f.Add("since=%ZZ&until=-1")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if tf, err := ParseTraceFilter(q, now); err == nil {
			if tf.Limit < 0 || tf.Limit > MaxLimit || tf.MinDuration < 0 {
				t.Errorf("accepted out-of-range trace filter %+v", tf)
			}
		}
		if lf, err := ParseLogFilter(q, now); err == nil {
			if lf.Limit < 0 || lf.Limit > MaxLimit {
				t.Errorf("accepted out-of-range log filter %+v", lf)
			}
		}
	})
}
