package tracebackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/controlplane/forward"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// TracesPath is the OTLP/HTTP traces path appended to a URL without a path.
const TracesPath = "/v1/traces"

// DefaultBatchSpans is ForwarderConfig.BatchSpans' default;
// forward.Delivery has the other defaults.
const DefaultBatchSpans = 2000

// Drop reasons, the "reason" label of
// pilothouse_trace_forward_dropped_spans_total.
const (
	DropQueueFull = forward.DropQueueFull
	DropExport    = "export_failed"
	DropInvalid   = "invalid"
	DropClosed    = forward.DropClosed
)

// Errors.
var (
	// ErrNoURL reports a config without a URL.
	ErrNoURL = errors.New("tracebackend: no URL")
	// ErrExport reports an export the backend refused or did not get.
	ErrExport = errors.New("tracebackend: export failed")
)

// ForwarderConfig configures a Forwarder. Zero values mean the defaults.
type ForwarderConfig struct {
	// URL is the OTLP/HTTP endpoint: a URL without a path gets
	// TracesPath (http://collector:4318 -> http://collector:4318/v1/traces).
	URL string
	// Headers are added to every export (for example Authorization).
	Headers map[string]string
	// BatchSpans caps the spans in one export request.
	BatchSpans int
	// Delivery is the queue, timeout, retries (on a network error, 429,
	// 502, 503 or 504), client and logger.
	forward.Delivery
	// Registerer receives the forwarder's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Forwarder exports spans to an OTLP/HTTP endpoint in the background.
// Enqueue never blocks; it is safe for concurrent use.
type Forwarder struct {
	cfg      ForwarderConfig
	endpoint string

	q *forward.Queue[store.Span]

	metrics *forward.Metrics
}

// NewForwarder starts a forwarder. Stop it with Close.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if cfg.URL == "" {
		return nil, ErrNoURL
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracebackend: URL %q: want http(s)://host[:port][/path]", cfg.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = TracesPath
	}
	if cfg.BatchSpans <= 0 {
		cfg.BatchSpans = DefaultBatchSpans
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()
	f := &Forwarder{
		cfg:      cfg,
		endpoint: u.String(),
		metrics: forward.NewMetrics(forward.MetricNames{
			Forwarded: "pilothouse_trace_forward_spans_total", ForwardedHelp: "Spans the OTLP trace backend accepted.",
			Dropped: "pilothouse_trace_forward_dropped_spans_total", DroppedHelp: "Spans not forwarded to the OTLP trace backend, by reason.",
			Requests: "pilothouse_trace_forward_exports_total", RequestsHelp: "Export requests to the OTLP trace backend, by result (ok, error).",
			Queued: "pilothouse_trace_forward_queue_batches", QueuedHelp: "Batches waiting to be exported to the OTLP trace backend.",
		}, DropQueueFull, DropExport, DropInvalid, DropClosed),
	}
	if err := f.metrics.Register(cfg.Registerer, func() int { return f.q.Len() }); err != nil {
		return nil, fmt.Errorf("tracebackend: %w", err)
	}
	f.q = forward.New(forward.Config[store.Span]{Batches: cfg.QueueBatches, MaxItems: cfg.BatchSpans,
		Send: f.send, Drop: f.metrics.Drop})
	return f, nil
}

// Enqueue queues a copy of spans for export and reports whether it fit;
// a batch that does not fit is dropped and counted. It never blocks.
func (f *Forwarder) Enqueue(spans []store.Span) bool {
	return f.q.Enqueue(spans)
}

// Close stops accepting spans and exports what is queued until ctx
// ends; what is left then is dropped. It returns ctx's error if it gave
// up.
func (f *Forwarder) Close(ctx context.Context) error {
	if err := f.q.Close(ctx); err != nil {
		return fmt.Errorf("tracebackend: %w", err)
	}
	return nil
}

func (f *Forwarder) send(ctx context.Context, spans []store.Span) {
	req, skipped := exportRequest(spans)
	if skipped > 0 {
		f.metrics.Drop(DropInvalid, skipped)
	}
	sent := len(spans) - skipped
	if sent == 0 {
		return
	}
	body, err := proto.Marshal(req)
	if err != nil {
		f.metrics.Drop(DropExport, sent)
		return
	}
	err = forward.Retry(ctx, f.cfg.Retries, f.cfg.RetryBackoff, func() error { return f.export(ctx, body) }, f.metrics.Request)
	if err != nil {
		f.cfg.Logger.Warn("tracebackend: dropping spans", "spans", sent, "err", err)
		f.metrics.Drop(DropExport, sent)
		return
	}
	f.metrics.Forwarded.Add(float64(sent))
}

func (f *Forwarder) export(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.endpoint, bytes.NewReader(body))
	if err != nil {
		return forward.Permanent(fmt.Errorf("%w: %w", ErrExport, err))
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range f.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrExport, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted, http.StatusNoContent:
		return nil
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return fmt.Errorf("%w: %s", ErrExport, resp.Status)
	}
	return forward.Permanent(fmt.Errorf("%w: %s: %s", ErrExport, resp.Status, strings.TrimSpace(string(msg))))
}

// SpanWriter stores spans; ingest.SpanWriter and *store.Store have this
// method.
type SpanWriter interface {
	WriteSpans(ctx context.Context, spans []store.Span) error
}

// Tee writes spans to Primary first and, once it accepted them, queues
// them for the trace backend, which never slows or fails a write.
type Tee struct {
	Primary   SpanWriter
	Forwarder *Forwarder
}

// WriteSpans implements SpanWriter.
func (t Tee) WriteSpans(ctx context.Context, spans []store.Span) error {
	if err := t.Primary.WriteSpans(ctx, spans); err != nil {
		return err
	}
	t.Forwarder.Enqueue(spans)
	return nil
}
