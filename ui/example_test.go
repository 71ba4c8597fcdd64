package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/pilothouse/pilothouse/ui"
)

// emptySource is a Source with no data yet.
type emptySource struct{}

func (emptySource) Services(context.Context, time.Time) ([]ui.ServiceSummary, error) {
	return nil, nil
}

func (emptySource) Service(context.Context, string, time.Time) (ui.ServiceDetail, error) {
	return ui.ServiceDetail{}, ui.ErrNotFound
}
func (emptySource) Traces(context.Context, ui.TraceQuery) ([]ui.TraceRow, error) { return nil, nil }
func (emptySource) Trace(context.Context, string) (ui.Trace, error) {
	return ui.Trace{}, ui.ErrNotFound
}
func (emptySource) Logs(context.Context, ui.LogQuery) ([]ui.LogLine, error) { return nil, nil }
func (emptySource) Edges(context.Context, time.Time, time.Time) ([]ui.Edge, error) {
	return nil, nil
}

func ExampleNew() {
	h := ui.New(emptySource{},
		ui.WithAgentURL("http://pilothouse.internal:4318"),
		ui.WithUser(func(r *http.Request) string { return r.Header.Get("X-User") }),
	)
	mux := http.NewServeMux()
	mux.Handle("/", h) // the JSON API and ingest claim their own, longer paths

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/services/nope", nil))
	fmt.Println(rec.Code)
	// Output: 404
}
