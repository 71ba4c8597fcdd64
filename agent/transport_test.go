package agent

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// downstream records the headers of every request it gets.
type downstream struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
}

func newDownstream(t *testing.T, status int) *downstream {
	t.Helper()
	d := &downstream{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.headers = append(d.headers, r.Header.Clone())
		d.mu.Unlock()
		if r.URL.Path == "/slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(d.Close)
	return d
}

// callDownstream is a handler that calls url with client in the
// request's context and answers 200, or 502 when the call fails.
func callDownstream(client *http.Client, url string) gin.HandlerFunc {
	return func(c *gin.Context) {
		req, _ := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			c.String(http.StatusBadGateway, err.Error())
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		c.Status(http.StatusOK)
	}
}

func TestTransportPropagation(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		wantCode codes.Code
	}{
		{name: "ok", status: http.StatusOK, wantCode: codes.Unset},
		{name: "server error", status: http.StatusBadGateway, wantCode: codes.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			down := newDownstream(t, tt.status)
			a, rec := newTestAgent(t)
			client := &http.Client{Transport: a.Transport(nil)}
			r := gin.New()
			r.Use(a.Middleware())
			r.GET("/call", callDownstream(client, down.URL+"/x?secret=1"))
			w := serve(t, r, http.MethodGet, "/call", http.Header{wire.HeaderRequestID: {"rid-1"}})
			if w.Code != http.StatusOK {
				t.Fatalf("status: got %d, want 200", w.Code)
			}
			spans := rec.Ended()
			if len(spans) != 2 {
				t.Fatalf("spans: got %d, want 2", len(spans))
			}
			cs, server := spans[0], spans[1]
			if cs.SpanKind() != trace.SpanKindClient {
				t.Fatalf("first ended span kind: got %v, want client", cs.SpanKind())
			}
			if cs.Name() != "GET" {
				t.Errorf("client span name: got %q, want GET", cs.Name())
			}
			u, _ := url.Parse(down.URL)
			port, _ := strconv.Atoi(u.Port())
			attrs := attribute.NewSet(cs.Attributes()...)
			if v, _ := attrs.Value("server.address"); v.AsString() != u.Hostname() {
				t.Errorf("server.address: got %q, want %q", v.AsString(), u.Hostname())
			}
			if v, _ := attrs.Value("server.port"); v.AsInt64() != int64(port) {
				t.Errorf("server.port: got %d, want %d", v.AsInt64(), port)
			}
			if cs.Parent().SpanID() != server.SpanContext().SpanID() {
				t.Errorf("client parent: got %s, want server span %s", cs.Parent().SpanID(), server.SpanContext().SpanID())
			}
			if cs.Status().Code != tt.wantCode {
				t.Errorf("client status: got %v, want %v", cs.Status().Code, tt.wantCode)
			}
			at := attrsOf(cs.Attributes())
			if at[wire.AttrRequestID] != "rid-1" {
				t.Errorf("client request_id: got %q, want rid-1", at[wire.AttrRequestID])
			}
			if strings.Contains(at["url.full"], "secret") {
				t.Errorf("url.full: got %q, want no query", at["url.full"])
			}
			h := down.headers[0]
			if got := h.Get(wire.HeaderRequestID); got != "rid-1" {
				t.Errorf("outbound X-Request-ID: got %q, want rid-1", got)
			}
			wantTP := "00-" + server.SpanContext().TraceID().String() + "-" + cs.SpanContext().SpanID().String() + "-01"
			if got := h.Get("Traceparent"); got != wantTP {
				t.Errorf("outbound traceparent: got %q, want %q", got, wantTP)
			}
		})
	}
}

func TestTransportWithoutRequestContext(t *testing.T) {
	down := newDownstream(t, http.StatusOK)
	a, rec := newTestAgent(t)
	req, _ := http.NewRequest(http.MethodGet, down.URL, nil)
	resp, err := (&http.Client{Transport: a.Transport(http.DefaultTransport)}).Do(req)
	if err != nil {
		t.Fatalf("Do: got %v, want nil", err)
	}
	_ = resp.Body.Close()
	if got := len(rec.Ended()); got != 1 {
		t.Fatalf("spans: got %d, want 1", got)
	}
	h := down.headers[0]
	if h.Get("Traceparent") == "" {
		t.Errorf("traceparent: got none, want one")
	}
	if got := h.Get(wire.HeaderRequestID); got != "" {
		t.Errorf("X-Request-ID: got %q, want none", got)
	}
	if req.Header.Get("Traceparent") != "" {
		t.Errorf("caller's request: got a traceparent header, want it untouched")
	}
}

func TestTransportTimeout(t *testing.T) {
	down := newDownstream(t, http.StatusOK)
	a, rec := newTestAgent(t, WithOutboundTimeout(50*time.Millisecond))
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, down.URL+"/slow", nil)
	_, err := (&http.Client{Transport: a.Transport(nil)}).Do(req)
	if err == nil {
		t.Fatalf("Do: got nil error, want a timeout")
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Status().Code != codes.Error {
		t.Errorf("spans: got %d, want 1 with error status", len(spans))
	}
}

func TestURLPort(t *testing.T) {
	for raw, want := range map[string]int{
		"http://orders:8080/x": 8080,
		"http://orders/x":      80,
		"https://psp.example/": 443,
		"ftp://files/":         0,
		"http://orders:0/":     0,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := urlPort(u); got != want {
			t.Errorf("urlPort(%s): got %d, want %d", raw, got, want)
		}
	}
}
