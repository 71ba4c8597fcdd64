package loki

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pilothouse/pilothouse/controlplane/forward"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// PushPath is Loki's push endpoint, relative to its base URL.
const PushPath = "/loki/api/v1/push"

// DefaultBatchRecords is Config.BatchRecords' default; forward.Delivery
// has the other defaults.
const DefaultBatchRecords = 1000

// Errors.
var (
	// ErrNoURL reports a Config without a Loki URL.
	ErrNoURL = errors.New("loki: no URL")
	// ErrPush reports a push Loki refused or that did not reach it.
	ErrPush = errors.New("loki: push failed")
	// ErrClosed reports use of a closed Forwarder.
	ErrClosed = errors.New("loki: forwarder closed")
)

// Config configures a Forwarder. Zero values mean the defaults.
type Config struct {
	// URL is Loki's base URL (http://loki:3100); a URL that already ends
	// in PushPath is used as is.
	URL string
	// TenantID, when set, is sent as X-Scope-OrgID.
	TenantID string
	// BatchRecords caps the records in one push.
	BatchRecords int
	// Delivery is the queue, timeout, retries, client and logger.
	forward.Delivery
	// Registerer receives the forwarder's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Forwarder pushes log records to Loki in the background. Enqueue never
// blocks; it is safe for concurrent use.
type Forwarder struct {
	cfg     Config
	pushURL string

	q   *forward.Queue[store.LogRecord]
	buf []byte // encoding buffer of the sending goroutine

	metrics *forward.Metrics
}

// Drop reasons, the "reason" label of pilothouse_loki_dropped_records_total.
const (
	DropQueueFull = forward.DropQueueFull
	DropPush      = "push_failed"
	DropClosed    = forward.DropClosed
)

// NewForwarder starts a forwarder. Stop it with Close.
func NewForwarder(cfg Config) (*Forwarder, error) {
	if cfg.URL == "" {
		return nil, ErrNoURL
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loki: URL %q: want http(s)://host[:port]", cfg.URL)
	}
	if cfg.BatchRecords <= 0 {
		cfg.BatchRecords = DefaultBatchRecords
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()
	push := strings.TrimRight(cfg.URL, "/")
	if !strings.HasSuffix(push, PushPath) {
		push += PushPath
	}
	f := &Forwarder{
		cfg:     cfg,
		pushURL: push,
		metrics: forward.NewMetrics(forward.MetricNames{
			Forwarded: "pilothouse_loki_forwarded_records_total", ForwardedHelp: "Log records Loki accepted.",
			Dropped: "pilothouse_loki_dropped_records_total", DroppedHelp: "Log records not forwarded to Loki, by reason.",
			Requests: "pilothouse_loki_pushes_total", RequestsHelp: "Push requests to Loki, by result (ok, error).",
			Queued: "pilothouse_loki_queue_batches", QueuedHelp: "Batches waiting to be pushed to Loki.",
		}, DropQueueFull, DropPush, DropClosed),
	}
	if err := f.metrics.Register(cfg.Registerer, func() int { return f.q.Len() }); err != nil {
		return nil, fmt.Errorf("loki: %w", err)
	}
	f.q = forward.New(forward.Config[store.LogRecord]{Batches: cfg.QueueBatches, MaxItems: cfg.BatchRecords,
		Send: f.send, Drop: f.metrics.Drop})
	return f, nil
}

// Enqueue queues a copy of logs for Loki and reports whether it fit; a
// batch that does not fit is dropped and counted. It never blocks.
func (f *Forwarder) Enqueue(logs []store.LogRecord) bool {
	return f.q.Enqueue(logs)
}

// Close stops accepting records and pushes what is queued until ctx
// ends; what is left then is dropped. It returns ctx's error if it gave
// up.
func (f *Forwarder) Close(ctx context.Context) error {
	if err := f.q.Close(ctx); err != nil {
		return fmt.Errorf("loki: %w", err)
	}
	return nil
}

// send pushes one batch with retries and counts the outcome. It runs on
// the queue's one sending goroutine, so it may reuse f.buf.
func (f *Forwarder) send(ctx context.Context, logs []store.LogRecord) {
	f.buf = encodePush(f.buf[:0], streamsOf(logs))
	body := snappy.Encode(nil, f.buf)
	err := forward.Retry(ctx, f.cfg.Retries, f.cfg.RetryBackoff, func() error { return f.push(ctx, body) }, f.metrics.Request)
	if err != nil {
		f.cfg.Logger.Warn("loki: dropping log records", "records", len(logs), "err", err)
		f.metrics.Drop(DropPush, len(logs))
		return
	}
	f.metrics.Forwarded.Add(float64(len(logs)))
}

func (f *Forwarder) push(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.pushURL, bytes.NewReader(body))
	if err != nil {
		return forward.Permanent(fmt.Errorf("%w: %w", ErrPush, err))
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	if f.cfg.TenantID != "" {
		req.Header.Set("X-Scope-OrgID", f.cfg.TenantID)
	}
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPush, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("%w: %s: %s", ErrPush, resp.Status, bytes.TrimSpace(msg))
	default:
		return forward.Permanent(fmt.Errorf("%w: %s: %s", ErrPush, resp.Status, bytes.TrimSpace(msg)))
	}
}

// LogWriter stores log records; ingest.LogWriter and *store.Store have
// this method.
type LogWriter interface {
	WriteLogs(ctx context.Context, logs []store.LogRecord) error
}

// Tee writes logs to Primary first and, once it accepted them, queues
// them for Loki. Loki never slows or fails a write.
type Tee struct {
	Primary   LogWriter
	Forwarder *Forwarder
}

// WriteLogs implements LogWriter.
func (t Tee) WriteLogs(ctx context.Context, logs []store.LogRecord) error {
	if err := t.Primary.WriteLogs(ctx, logs); err != nil {
		return err
	}
	t.Forwarder.Enqueue(logs)
	return nil
}
