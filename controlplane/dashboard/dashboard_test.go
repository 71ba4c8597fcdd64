package dashboard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/ui"
)

func openStore(tb testing.TB, dir string) *store.Store {
	tb.Helper()
	st, err := store.Open(dir, store.Options{MaxAge: -1, MaxBytes: -1, RetentionInterval: -1})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return st
}

// fixture is the real store and registry behind the real dashboard.
type fixture struct {
	now time.Time
	src *Source
	h   http.Handler
}

func newFixture(t *testing.T, requests int) fixture {
	t.Helper()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	st := openStore(t, t.TempDir())
	fillStore(t, st, requests, 6, now.Add(-time.Minute), 10*time.Minute)
	reg := registry.New(registry.Options{})
	for i := range 10 {
		beat(reg, now.Add(time.Duration(i-10)*2*time.Second))
	}
	src := New(st, reg)
	return fixture{now: now, src: src, h: ui.New(src, ui.WithClock(func() time.Time { return now }))}
}

func (f fixture) get(t *testing.T, target string) (int, http.Header, *goquery.Document) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	doc, err := goquery.NewDocumentFromReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Code, rec.Header(), doc
}

func sel(id string) string { return `[data-testid="` + id + `"]` }

func TestPagesOverRealStore(t *testing.T) {
	f := newFixture(t, 200)
	tests := []struct {
		name   string
		target string
		want   map[string]int // data-testid -> exact count; -1 means at least one
	}{
		{"overview", "/", map[string]int{"service-row": 4, "drops": 1}},
		{"service", "/services/payments", map[string]int{"route-row": 1, "instance-row": 1, "check-message": 1, "recent-errors": 1, "slowest-traces": 1}},
		{"traces", "/traces?service=payments&status=error", map[string]int{"trace-row": 10}},
		{"trace", "/traces/" + traceID(40), map[string]int{"span": 7, "span-error": 5, "trace-logs-link": 1}},
		{"logs of a request", "/logs?request_id=" + requestID(40), map[string]int{"log-line": 6, "log-trace-link": 6}},
		{"error logs", "/logs?level=ERROR&limit=5", map[string]int{"log-line": 5, "older-link": 1}},
		{"map", "/map?window=1h", map[string]int{"map-edge": 3, "map-node": 4}},
		{"service known only from traces", "/services/inventory", map[string]int{"service-page": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, doc := f.get(t, tt.target)
			if code != http.StatusOK {
				t.Fatalf("got status %d, want 200: %s", code, doc.Find(sel("error-message")).Text())
			}
			for id, want := range tt.want {
				got := doc.Find(sel(id)).Length()
				if (want < 0 && got == 0) || (want >= 0 && got != want) {
					t.Errorf("%s: got %d, want %d", id, got, want)
				}
			}
		})
	}
}

// TestOverviewShowsDrops: what an agent's heartbeat says it lost reaches
// the overview, local log lines included.
func TestOverviewShowsDrops(t *testing.T) {
	f := newFixture(t, 10)
	_, _, doc := f.get(t, "/")
	got := strings.Join(strings.Fields(doc.Find(sel("drops")).Text()), " ")
	for _, want := range []string{"12 spans dropped", "3 logs dropped", "5 local log lines dropped"} {
		if !strings.Contains(got, want) {
			t.Errorf("overview drops: got %q, want %q in it", got, want)
		}
	}
}

func TestSearchFindsRequestOverRealStore(t *testing.T) {
	f := newFixture(t, 50)
	code, hdr, _ := f.get(t, "/search?q="+requestID(7))
	if code != http.StatusSeeOther || hdr.Get("Location") != "/traces/"+traceID(7) {
		t.Fatalf("search: got %d %q, want 303 to the trace", code, hdr.Get("Location"))
	}
	_, _, doc := f.get(t, "/traces/"+traceID(7))
	link, _ := doc.Find(sel("trace-logs-link")).Attr("href")
	_, _, logs := f.get(t, link)
	if got := logs.Find(sel("log-request-id")).First().Text(); got != requestID(7) {
		t.Errorf("logs of the request: got request ID %q, want %q", got, requestID(7))
	}
}

func TestStoreErrorsMapToPages(t *testing.T) {
	f := newFixture(t, 5)
	tests := []struct {
		name     string
		target   string
		wantCode int
	}{
		{"unknown trace", "/traces/" + strings.Repeat("ab", 16), http.StatusNotFound},
		{"all-zero trace id", "/traces/" + strings.Repeat("0", 32), http.StatusBadRequest},
		{"unknown service", "/services/ghost", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, doc := f.get(t, tt.target)
			if code != tt.wantCode {
				t.Errorf("got %d, want %d (%s)", code, tt.wantCode, doc.Find(sel("error-message")).Text())
			}
		})
	}
	if err := mapErr(store.ErrNotFound); !errors.Is(err, ui.ErrNotFound) {
		t.Errorf("mapErr(ErrNotFound): got %v, want ui.ErrNotFound", err)
	}
}

func TestAttrText(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]any
		want string
	}{
		{"sorted and typed", map[string]any{"b": 2.5, "a": "x", "c": true, "d": nil, "e": []any{1.0}}, "a=x b=2.5 c=true d= e=[1]"},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var parts []string
			for _, a := range attrs(tt.in) {
				parts = append(parts, a.Key+"="+a.Value)
			}
			if got := strings.Join(parts, " "); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
