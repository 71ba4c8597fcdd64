package agent

import (
	"context"
	"io"
	"net/http"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// Transport wraps base (nil means a clone of http.DefaultTransport) so that
// every outbound call gets a client span, carries traceparent and the
// request's X-Request-ID, and is bounded by WithOutboundTimeout. The span
// ends when the response body is closed or read to the end. It works with
// contexts that hold no span or request: the call then starts a new trace.
func (a *Agent) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &transport{a: a, base: base}
}

type transport struct {
	a    *Agent
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	cancel := context.CancelFunc(func() {})
	if d := t.a.cfg.outboundTimeout; d > 0 {
		ctx, cancel = context.WithTimeout(ctx, d)
	}
	method := normalizeMethod(req.Method)
	host := req.URL.Host
	if req.Host != "" {
		host = req.Host
	}
	requestID := RequestID(ctx)
	ctx, span := t.a.tracer.Start(ctx, "HTTP "+method+" "+host,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("server.address", req.URL.Hostname()),
			attribute.String("url.full", redactedURL(req)),
		))
	if requestID != "" {
		span.SetAttributes(attribute.String(wire.AttrRequestID, requestID))
	}

	out := req.Clone(ctx) // never change the caller's request
	t.a.prop.Inject(ctx, headerCarrier(out.Header))
	if requestID != "" && out.Header.Get(wire.HeaderRequestID) == "" {
		out.Header.Set(wire.HeaderRequestID, requestID)
	}

	resp, err := t.base.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.End()
		cancel()
		return resp, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	// A 101 body must stay an io.ReadWriteCloser (protocol upgrades), so
	// it is not wrapped; the span ends at the switch.
	if resp.Body == nil || resp.Body == http.NoBody || resp.StatusCode == http.StatusSwitchingProtocols {
		span.End()
		cancel()
		return resp, nil
	}
	resp.Body = &spanBody{rc: resp.Body, span: span, cancel: cancel}
	return resp, nil
}

// redactedURL drops user info and the query, which may hold secrets.
func redactedURL(req *http.Request) string {
	u := *req.URL
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	return u.String()
}

// spanBody ends the client span and releases the timeout when the body is
// read to the end or closed.
type spanBody struct {
	rc     io.ReadCloser
	span   trace.Span
	cancel context.CancelFunc
	once   sync.Once
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.end(nil)
	} else if err != nil {
		b.end(err)
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.rc.Close()
	b.end(nil)
	return err
}

func (b *spanBody) end(err error) {
	b.once.Do(func() {
		if err != nil {
			b.span.RecordError(err)
			b.span.SetStatus(codes.Error, err.Error())
		}
		b.span.End()
		b.cancel()
	})
}
