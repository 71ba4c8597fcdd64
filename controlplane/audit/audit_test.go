package audit

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openLog(t *testing.T, dir string) *Log {
	t.Helper()
	l, err := Open(dir, func() time.Time { return t0 })
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func record(t *testing.T, l *Log, e Event) Event {
	t.Helper()
	got, err := l.Record(context.Background(), e)
	if err != nil {
		t.Fatalf("record %+v: %v", e, err)
	}
	return got
}

func TestRecordAndList(t *testing.T) {
	l := openLog(t, t.TempDir())
	record(t, l, Event{Actor: "alice", Action: ActionLogin, Remote: "10.0.0.1:5000"})
	record(t, l, Event{Time: t0.Add(time.Minute), Actor: "bob", Action: ActionLoginFailed})
	record(t, l, Event{Time: t0.Add(2 * time.Minute), Actor: "alice", Action: ActionPolicyUpdate, Target: "orders", Diff: "- a\n+ b\n"})
	record(t, l, Event{Time: t0.Add(3 * time.Minute), Actor: "alice", Action: ActionLogout})

	tests := []struct {
		name    string
		filter  Filter
		actions []string
	}{
		{name: "all newest first", filter: Filter{}, actions: []string{ActionLogout, ActionPolicyUpdate, ActionLoginFailed, ActionLogin}},
		{name: "by actor", filter: Filter{Actor: "bob"}, actions: []string{ActionLoginFailed}},
		{name: "by action", filter: Filter{Action: ActionPolicyUpdate}, actions: []string{ActionPolicyUpdate}},
		{name: "since inclusive", filter: Filter{Since: t0.Add(2 * time.Minute)}, actions: []string{ActionLogout, ActionPolicyUpdate}},
		{name: "until exclusive", filter: Filter{Until: t0.Add(time.Minute)}, actions: []string{ActionLogin}},
		{name: "limit", filter: Filter{Limit: 2}, actions: []string{ActionLogout, ActionPolicyUpdate}},
		{name: "before pages back", filter: Filter{Before: 3}, actions: []string{ActionLoginFailed, ActionLogin}},
		{name: "actor and action", filter: Filter{Actor: "alice", Action: ActionLoginFailed}, actions: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := l.List(context.Background(), tt.filter)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			var got []string
			for _, e := range events {
				got = append(got, e.Action)
			}
			if strings.Join(got, ",") != strings.Join(tt.actions, ",") {
				t.Errorf("got %v, want %v", got, tt.actions)
			}
		})
	}

	events, _ := l.List(context.Background(), Filter{Action: ActionPolicyUpdate})
	if e := events[0]; e.Target != "orders" || e.Diff != "- a\n+ b\n" || !e.Time.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("got %+v, want target orders, the diff and the time kept", e)
	}
}

// TestRecordOutlivesItsCaller: an event is recorded even when the request
// that caused it has already ended (a client that hung up right after
// changing a policy must not leave the change unaudited).
func TestRecordOutlivesItsCaller(t *testing.T) {
	l := openLog(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Record(ctx, Event{Actor: "alice", Action: ActionPolicyUpdate, Target: "orders"}); err != nil {
		t.Fatalf("Record with an ended context: %v, want the event recorded", err)
	}
	events, err := l.List(context.Background(), Filter{Action: ActionPolicyUpdate})
	if err != nil || len(events) != 1 || events[0].Actor != "alice" {
		t.Fatalf("got %+v, %v; want alice's policy update", events, err)
	}
}

func TestRecordRejectsEventWithoutAction(t *testing.T) {
	l := openLog(t, t.TempDir())
	if _, err := l.Record(context.Background(), Event{Actor: "x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

// TestEventsSurviveReopen: a recorded event is in the file, not in memory.
func TestEventsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(context.Background(), Event{Actor: "a", Action: ActionUserCreate, Target: "b"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, dir)
	events, err := l.List(context.Background(), Filter{})
	if err != nil || len(events) != 1 || events[0].Target != "b" {
		t.Errorf("got %+v, %v; want the one event", events, err)
	}
}

// TestNoEditPath: the database itself refuses to change or remove an
// event, whoever asks.
func TestNoEditPath(t *testing.T) {
	l := openLog(t, t.TempDir())
	record(t, l, Event{Actor: "a", Action: ActionLogin})
	for _, stmt := range []string{
		`UPDATE events SET actor = 'mallory'`,
		`DELETE FROM events`,
	} {
		if _, err := l.db.Exec(stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: got %v, want an append-only error", stmt, err)
		}
	}
	events, _ := l.List(context.Background(), Filter{})
	if len(events) != 1 || events[0].Actor != "a" {
		t.Errorf("got %+v, want the event unchanged", events)
	}
}

func TestThrottle(t *testing.T) {
	th := NewThrottle(time.Minute, 2)
	steps := []struct {
		name string
		key  string
		at   time.Duration
		want bool
	}{
		{"first from a", "a", 0, true},
		{"again from a", "a", 10 * time.Second, false},
		{"first from b", "b", 20 * time.Second, true},
		{"c beyond the key cap", "c", 30 * time.Second, false},
		{"a after a minute", "a", 61 * time.Second, true},
		{"c once b aged out", "c", 81 * time.Second, true},
	}
	for _, s := range steps {
		if got := th.Allow(s.key, t0.Add(s.at)); got != s.want {
			t.Errorf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
}

func TestHandler(t *testing.T) {
	l := openLog(t, t.TempDir())
	for i := 0; i < 5; i++ {
		record(t, l, Event{Actor: "alice", Action: ActionLogin})
	}
	h := Handler(l)
	tests := []struct {
		name       string
		method     string
		query      string
		wantStatus int
		wantEvents int
		wantNext   int64
		wantField  string
	}{
		{name: "first page", method: "GET", query: "limit=2", wantStatus: 200, wantEvents: 2, wantNext: 4},
		{name: "next page", method: "GET", query: "limit=2&before=4", wantStatus: 200, wantEvents: 2, wantNext: 2},
		{name: "last page", method: "GET", query: "limit=2&before=2", wantStatus: 200, wantEvents: 1},
		{name: "filter", method: "GET", query: "action=logout", wantStatus: 200, wantEvents: 0},
		{name: "bad limit", method: "GET", query: "limit=0", wantStatus: 400, wantField: "limit"},
		{name: "bad since", method: "GET", query: "since=yesterday", wantStatus: 400, wantField: "since"},
		{name: "no delete", method: "DELETE", wantStatus: 405},
		{name: "no post", method: "POST", wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, "/api/v1/audit?"+tt.query, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("got %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantStatus != http.StatusOK {
				var body struct{ Field string }
				json.Unmarshal(rec.Body.Bytes(), &body)
				if body.Field != tt.wantField {
					t.Errorf("field: got %q, want %q", body.Field, tt.wantField)
				}
				return
			}
			var p Page
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if len(p.Events) != tt.wantEvents || p.NextBefore != tt.wantNext {
				t.Errorf("got %d events, next %d; want %d, %d", len(p.Events), p.NextBefore, tt.wantEvents, tt.wantNext)
			}
		})
	}
	// Five events, nothing deleted by any request above.
	events, _ := l.List(context.Background(), Filter{})
	if len(events) != 5 {
		t.Errorf("got %d events, want 5", len(events))
	}
}
