package ingest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/ingest"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

type printSpans struct{}

func (printSpans) WriteSpans(_ context.Context, spans []store.Span) error {
	for _, s := range spans {
		fmt.Println(s.Service, s.Kind, s.Name, s.TraceID, s.RequestID)
	}
	return nil
}

func ExampleNew() {
	in := ingest.New(ingest.Config{Spans: printSpans{}, Authenticate: ingest.BearerToken("s3cret")})
	mux := http.NewServeMux()
	mux.Handle("POST "+wire.PathTraces, in.Traces())

	body := `{"resourceSpans":[{
	  "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}}]},
	  "scopeSpans":[{"spans":[{
	    "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
	    "name":"GET /orders/:id","kind":2,
	    "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
	    "attributes":[{"key":"request_id","value":{"stringValue":"req-1"}}]}]}]}]}`
	req := httptest.NewRequest(http.MethodPost, wire.PathTraces, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer s3cret")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())
	// Output:
	// orders server GET /orders/:id 5b8efff798038103d269b633813fc60c req-1
	// 200 {}
}
