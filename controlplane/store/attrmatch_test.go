package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTracesByAttribute(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	for n := range 3 {
		spans := shopTrace(n, t0.Add(time.Duration(n)*time.Second), "", 200)
		// The orders server span of each trace names its order; the
		// second trace's payment is flagged as a retry.
		spans[2].Attributes["order_id"] = float64(100 + n)
		spans[2].Attributes["customer"] = "c-7 vip"
		spans[2].Attributes["note"] = `say "hi" <b>&é`
		if n == 1 {
			spans[4].Attributes["retry"] = true
			spans[4].Attributes["amount"] = 12.5
		}
		mustWriteSpans(t, s, spans)
	}
	tests := []struct {
		name  string
		attrs []AttributeMatch
		want  []string // trace IDs, newest first
	}{
		{"number", []AttributeMatch{{"order_id", "101"}}, []string{traceID(1)}},
		{"string with a space", []AttributeMatch{{"customer", "c-7 vip"}}, []string{traceID(2), traceID(1), traceID(0)}},
		{"boolean", []AttributeMatch{{"retry", "true"}}, []string{traceID(1)}},
		{"float", []AttributeMatch{{"amount", "12.5"}}, []string{traceID(1)}},
		{"on different spans, all must match", []AttributeMatch{{"order_id", "101"}, {"retry", "true"}}, []string{traceID(1)}},
		{"no trace has both", []AttributeMatch{{"order_id", "100"}, {"retry", "true"}}, nil},
		{"other value", []AttributeMatch{{"order_id", "999"}}, nil},
		{"dotted key", []AttributeMatch{{"http.request.method", "GET"}}, []string{traceID(2), traceID(1), traceID(0)}},
		{"characters JSON escapes", []AttributeMatch{{"note", `say "hi" <b>&é`}}, []string{traceID(2), traceID(1), traceID(0)}},
		{"the value under another key", []AttributeMatch{{"customer", "GET"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Traces(context.Background(), TraceFilter{Attributes: tt.attrs})
			if err != nil {
				t.Fatalf("Traces: %v", err)
			}
			var ids []string
			for _, tr := range got {
				ids = append(ids, tr.TraceID)
			}
			if len(ids) != len(tt.want) {
				t.Fatalf("got %v, want %v", ids, tt.want)
			}
			for i := range ids {
				if ids[i] != tt.want[i] {
					t.Errorf("got %v, want %v", ids, tt.want)
				}
			}
		})
	}
}

func TestAttributeMatchIsValidated(t *testing.T) {
	for _, in := range []string{"", "=x", "novalue", `a"b=1`, "a b=1", "k\x00=1"} {
		if _, err := ParseAttributeMatch(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseAttributeMatch(%q): got %v, want ErrInvalid", in, err)
		}
	}
	m, err := ParseAttributeMatch(" user.id =a=b ")
	if err != nil || m != (AttributeMatch{"user.id", "a=b "}) {
		t.Errorf("ParseAttributeMatch: got %+v, %v; want user.id and the rest of the text as the value", m, err)
	}
	s := openTestStore(t, t.TempDir(), Options{})
	for _, f := range []TraceFilter{
		{Attributes: []AttributeMatch{{`x") OR 1=1 --`, "1"}}},
		{Attributes: make([]AttributeMatch, MaxAttributeMatches+1)},
	} {
		if _, err := s.Traces(context.Background(), f); !errors.Is(err, ErrInvalid) {
			t.Errorf("Traces(%+v): got %v, want ErrInvalid", f.Attributes[0], err)
		}
	}
}

// FuzzAttributeMatch: any search text is parsed or refused with
// ErrInvalid, and a parsed key never breaks the query it goes into.
func FuzzAttributeMatch(f *testing.F) {
	s := openTestStore(f, f.TempDir(), Options{})
	mustWriteSpans(f, s, shopTrace(0, t0, "", 200))
	for _, seed := range []string{"order_id=1", `a"]=1`, "http.route=/x", "k=", "=", "ü=1", "a.b-c:d/e@f=\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseAttributeMatch(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseAttributeMatch(%q): got %v, want ErrInvalid", in, err)
			}
			return
		}
		if _, err := s.Traces(context.Background(), TraceFilter{Attributes: []AttributeMatch{m}, Limit: 5}); err != nil {
			t.Fatalf("Traces with %+v: %v", m, err)
		}
	})
}

func TestLogsByAttribute(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	mustWriteLogs(t, s, []LogRecord{
		{Time: t0, Service: "orders", Body: "order loaded", Attributes: map[string]any{"order_id": int64(329), "sku": "sku-9"}},
		{Time: t0.Add(time.Second), Service: "gateway", Body: "order served", Attributes: map[string]any{"order_id": int64(329)}},
		{Time: t0.Add(2 * time.Second), Service: "gateway", Body: "order served", Attributes: map[string]any{"order_id": int64(330)}},
		{Time: t0.Add(3 * time.Second), Service: "inventory", Body: "stock checked", Attributes: map[string]any{"sku": "sku-9", "cached": true}},
	})
	tests := []struct {
		name  string
		f     LogFilter
		wantN int
	}{
		{"across services", LogFilter{Attributes: []AttributeMatch{{"order_id", "329"}}}, 2},
		{"with a service", LogFilter{Service: "gateway", Attributes: []AttributeMatch{{"order_id", "329"}}}, 1},
		{"two attributes on one record", LogFilter{Attributes: []AttributeMatch{{"order_id", "329"}, {"sku", "sku-9"}}}, 1},
		{"boolean", LogFilter{Attributes: []AttributeMatch{{"cached", "true"}}}, 1},
		{"no such value", LogFilter{Attributes: []AttributeMatch{{"order_id", "1"}}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Logs(context.Background(), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.wantN {
				t.Errorf("got %d records, want %d: %+v", len(got), tt.wantN, got)
			}
		})
	}
	if _, err := s.Logs(context.Background(), LogFilter{Attributes: []AttributeMatch{{"a b", "1"}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a bad key: got %v, want ErrInvalid", err)
	}
}
