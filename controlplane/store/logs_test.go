package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestLogRoundTrip(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	in := []LogRecord{{
		Time: t0, Service: "orders", Instance: "orders-1", Level: "WARN", SeverityNumber: 14,
		Body: "stock low", TraceID: traceID(1), SpanID: spanID(1, 2), RequestID: "req-1",
		Attributes: map[string]any{"sku": "A-1", "left": 2.0},
	}}
	mustWriteLogs(t, s, in)
	got, err := s.Logs(context.Background(), LogFilter{})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("Logs:\ngot  %+v\nwant %+v", got, in)
	}
}

func TestLogLevels(t *testing.T) {
	tests := []struct {
		name         string
		level        string
		severity     int
		wantLevel    string
		wantSeverity int
	}{
		{"level only", "error", 0, "ERROR", 17},
		{"warning alias", "warning", 0, "WARN", 13},
		{"severity only", "", 10, "INFO", 10},
		{"severity wins", "DEBUG", 18, "ERROR", 18},
		{"trace folds into debug", "", 2, "DEBUG", 2},
		{"fatal folds into error", "FATAL", 0, "ERROR", 21},
		{"neither", "", 0, "INFO", 9},
		{"unknown name", "NOTICE", 0, "INFO", 9},
	}
	s := openTestStore(t, t.TempDir(), Options{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rid := fmt.Sprint("level-", i)
			mustWriteLogs(t, s, []LogRecord{{Time: t0, Body: "x", Level: tt.level, SeverityNumber: tt.severity, RequestID: rid}})
			got, err := s.Logs(context.Background(), LogFilter{RequestID: rid})
			if err != nil || len(got) != 1 {
				t.Fatalf("Logs: got %v, %v, want one record", got, err)
			}
			if got[0].Level != tt.wantLevel || got[0].SeverityNumber != tt.wantSeverity {
				t.Errorf("got %s/%d, want %s/%d", got[0].Level, got[0].SeverityNumber, tt.wantLevel, tt.wantSeverity)
			}
		})
	}
}

func TestLogsFilters(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	mustWriteLogs(t, s, []LogRecord{
		{Time: at(0), Service: "gateway", Level: "INFO", Body: "request started", RequestID: "r1", TraceID: traceID(1)},
		{Time: at(1), Service: "orders", Level: "DEBUG", Body: "loading order 42", RequestID: "r1", TraceID: traceID(1)},
		{Time: at(2), Service: "payments", Level: "ERROR", Body: "card declined: 100% sure", RequestID: "r1", TraceID: traceID(1)},
		{Time: at(3), Service: "gateway", Level: "WARN", Body: "slow upstream", RequestID: "r2", TraceID: "00000000000000000000000000abcdef"},
		{Time: at(4), Service: "orders", Level: "INFO", Body: "Request_ID missing"},
	})
	tests := []struct {
		name string
		f    LogFilter
		want []string // bodies, newest first
	}{
		{"all", LogFilter{}, []string{"Request_ID missing", "slow upstream", "card declined: 100% sure", "loading order 42", "request started"}},
		{"limit", LogFilter{Limit: 2}, []string{"Request_ID missing", "slow upstream"}},
		{"request id", LogFilter{RequestID: "r1"}, []string{"card declined: 100% sure", "loading order 42", "request started"}},
		{"trace id", LogFilter{TraceID: "00000000000000000000000000abcdef"}, []string{"slow upstream"}},
		{"trace id upper case", LogFilter{TraceID: "00000000000000000000000000ABCDEF"}, []string{"slow upstream"}},
		{"service", LogFilter{Service: "orders"}, []string{"Request_ID missing", "loading order 42"}},
		{"min level warn", LogFilter{Level: "WARN"}, []string{"slow upstream", "card declined: 100% sure"}},
		{"min level info, one request", LogFilter{Level: "info", RequestID: "r1"}, []string{"card declined: 100% sure", "request started"}},
		{"query substring, any case", LogFilter{Query: "REQUEST"}, []string{"Request_ID missing", "request started"}},
		{"query percent is literal", LogFilter{Query: "100%"}, []string{"card declined: 100% sure"}},
		{"query underscore is literal", LogFilter{Query: "t_i"}, []string{"Request_ID missing"}},
		{"since inclusive, until exclusive", LogFilter{Since: at(1), Until: at(3)}, []string{"card declined: 100% sure", "loading order 42"}},
		{"no match", LogFilter{RequestID: "nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Logs(context.Background(), tt.f)
			if err != nil {
				t.Fatalf("Logs: %v", err)
			}
			var bodies []string
			for _, l := range got {
				bodies = append(bodies, l.Body)
			}
			if !reflect.DeepEqual(bodies, tt.want) {
				t.Errorf("got %q, want %q", bodies, tt.want)
			}
		})
	}
	if _, err := s.Logs(context.Background(), LogFilter{Level: "LOUD"}); err == nil {
		t.Errorf("bad level: got nil error, want ErrInvalid")
	}
}

func TestLogsPaging(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{})
	// Two services' exports interleave: records arrive out of time order.
	var want []string
	for batch := range 4 {
		var logs []LogRecord
		for i := range 5 {
			sec := (3-batch)*5 + i // later batches carry older lines
			logs = append(logs, LogRecord{Time: t0.Add(time.Duration(sec) * time.Second), Service: "svc", Body: fmt.Sprint(sec)})
		}
		mustWriteLogs(t, s, logs)
	}
	for sec := 19; sec >= 0; sec-- {
		want = append(want, fmt.Sprint(sec))
	}

	var got []string
	f := LogFilter{Limit: 6}
	for range 10 {
		page, err := s.Logs(context.Background(), f)
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		for _, l := range page {
			got = append(got, l.Body)
		}
		if len(page) < f.Limit {
			break
		}
		f.BeforeSeq = page[len(page)-1].Seq
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pages: got %q, want %q", got, want)
	}

	// Live tail: everything stored after a seq, including older timestamps.
	all, _ := s.Logs(context.Background(), LogFilter{Limit: MaxLimit})
	var maxSeq int64
	for _, l := range all {
		maxSeq = max(maxSeq, l.Seq)
	}
	late := []LogRecord{{Time: t0.Add(-time.Hour), Service: "svc", Body: "late"}}
	mustWriteLogs(t, s, late)
	tail, err := s.Logs(context.Background(), LogFilter{AfterSeq: maxSeq})
	if err != nil || len(tail) != 1 || tail[0].Body != "late" || tail[0].Seq != late[0].Seq {
		t.Errorf("tail: got %+v, %v, want the late line with seq %d", tail, err, late[0].Seq)
	}
}
