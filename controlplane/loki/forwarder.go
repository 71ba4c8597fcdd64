package loki

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	lokiclient "github.com/grafana/loki-client-go/loki"
	"github.com/grafana/loki-client-go/pkg/backoff"
	"github.com/grafana/loki-client-go/pkg/urlutil"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pilothouse/pilothouse/controlplane/forward"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// PushPath is Loki's push endpoint, relative to its base URL.
const PushPath = "/loki/api/v1/push"

// Defaults for zero Config fields; forward.Delivery has the others.
const (
	DefaultBatchRecords = 1000
	DefaultBatchBytes   = 1 << 20
	// DefaultBatchWait keeps a line's way to Loki under a second: the
	// client checks every BatchWait/10 for a batch that waited enough.
	DefaultBatchWait = 500 * time.Millisecond
)

// countsEvery is how often the Forwarder's metrics catch up with the
// client's counters while it runs.
const countsEvery = time.Second

// Errors.
var (
	// ErrNoURL reports a Config without a Loki URL.
	ErrNoURL = errors.New("loki: no URL")
	// ErrClientUnsupported reports a Config with Delivery.Client set:
	// loki-client-go builds its own HTTP client.
	ErrClientUnsupported = errors.New("loki: Delivery.Client is not supported by the push client")
	// ErrNoClientCounts reports that loki-client-go's counters, which the
	// Forwarder's metrics are derived from, are not on
	// prometheus.DefaultGatherer (it was replaced after the library
	// registered them).
	ErrNoClientCounts = errors.New("loki: loki-client-go counters not found on prometheus.DefaultGatherer")
)

// Config configures a Forwarder. Zero values mean the defaults.
type Config struct {
	// URL is Loki's base URL (http://loki:3100); a URL that already ends
	// in PushPath is used as is.
	URL string
	// TenantID, when set, is sent as X-Scope-OrgID.
	TenantID string
	// BatchRecords caps the records taken from the queue at once. It does
	// not cap a push: BatchBytes and BatchWait cut those.
	BatchRecords int
	// BatchBytes caps the log line bytes of one push (the client's
	// BatchSize); a line that would pass it starts the next push.
	BatchBytes int
	// BatchWait is how long the first line of a push waits for more
	// before it is sent.
	BatchWait time.Duration
	// Delivery is the queue, timeout, retries and logger. Its Client must
	// be nil (ErrClientUnsupported): loki-client-go makes its own, with
	// HTTP/2 and redirects off. Retries and RetryBackoff become the
	// client's backoff (RetryBackoff, doubling, with jitter); Timeout
	// bounds each request.
	forward.Delivery
	// Registerer receives the forwarder's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Forwarder pushes log records to Loki in the background with
// loki-client-go. Enqueue never blocks; it is safe for concurrent use.
//
// Records go from a bounded queue, one goroutine at a time, to the
// client's Handle, which blocks while the client sends or retries a
// batch; meanwhile the queue fills and then drops. The client batches by
// BatchBytes and BatchWait and retries network errors, 429 and 5xx.
type Forwarder struct {
	cfg  Config
	host string // the client's "host" label

	q       *forward.Queue[store.LogRecord]
	handoff chan store.LogRecord // queue -> feed, unbuffered
	client  *lokiclient.Client

	closeOnce  sync.Once
	stopCounts chan struct{} // ends countLoop
	countsDone chan struct{}
	stopped    chan struct{} // closed once the client stopped and its last counts are in

	gatherer   prometheus.Gatherer // where the client's counters are
	countsMu   sync.Mutex
	countsSeen clientCounts // the client's totals when last added to metrics
	metrics    *forward.Metrics
}

// Drop reasons, the "reason" label of pilothouse_loki_dropped_records_total.
const (
	// DropQueueFull: the queue was full (Loki slow or down).
	DropQueueFull = forward.DropQueueFull
	// DropPush: the client gave up on a push (a 4xx other than 429, or
	// the last retry failed).
	DropPush = "push_failed"
	// DropClosed: enqueued after Close, or still queued when Close gave up.
	DropClosed = forward.DropClosed
)

// NewForwarder starts a forwarder. Stop it with Close.
func NewForwarder(cfg Config) (*Forwarder, error) {
	u, err := pushURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Client != nil {
		return nil, ErrClientUnsupported
	}
	if cfg.BatchRecords <= 0 {
		cfg.BatchRecords = DefaultBatchRecords
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = DefaultBatchBytes
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = DefaultBatchWait
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()

	client, err := lokiclient.NewWithLogger(clientConfig(cfg, u), kitLogger{cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("loki: %w", err)
	}
	f := &Forwarder{
		cfg:        cfg,
		host:       u.Host,
		handoff:    make(chan store.LogRecord),
		client:     client,
		stopCounts: make(chan struct{}),
		countsDone: make(chan struct{}),
		stopped:    make(chan struct{}),
		gatherer:   prometheus.DefaultGatherer,
		metrics: forward.NewMetrics(forward.MetricNames{
			Forwarded: "pilothouse_loki_forwarded_records_total", ForwardedHelp: "Log records Loki accepted.",
			Dropped: "pilothouse_loki_dropped_records_total", DroppedHelp: "Log records not forwarded to Loki, by reason.",
			Requests: "pilothouse_loki_pushes_total", RequestsHelp: "Push requests to Loki, by result (ok, error).",
			Queued: "pilothouse_loki_queue_batches", QueuedHelp: "Batches waiting to be pushed to Loki.",
		}, DropQueueFull, DropPush, DropClosed),
	}
	// The client has just created its counters for host at their current
	// totals; the Forwarder counts what they gain from here.
	seen, ok := readClientCounts(f.gatherer, f.host)
	if !ok {
		client.Stop()
		return nil, ErrNoClientCounts
	}
	f.countsSeen = seen
	f.q = forward.New(forward.Config[store.LogRecord]{Batches: cfg.QueueBatches, MaxItems: cfg.BatchRecords,
		Send: f.send, Drop: f.metrics.Drop})
	go f.feed()
	go f.countLoop()
	if err := f.metrics.Register(cfg.Registerer, f.q.Len); err != nil {
		f.Close(context.Background())
		return nil, fmt.Errorf("loki: %w", err)
	}
	return f, nil
}

// pushURL checks Loki's base URL and returns its push endpoint.
func pushURL(base string) (*url.URL, error) {
	if base == "" {
		return nil, ErrNoURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loki: URL %q: want http(s)://host[:port]", base)
	}
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), ""
	if !strings.HasSuffix(u.Path, PushPath) {
		u.Path += PushPath
	}
	return u, nil
}

// clientConfig maps cfg onto loki-client-go's Config; push is the full
// push URL.
func clientConfig(cfg Config, push *url.URL) lokiclient.Config {
	attempts := 1 // Retries < 0: none
	if cfg.Retries > 0 {
		attempts += cfg.Retries
	}
	// The client waits a random time in [b, 2b) before a retry, with b
	// starting at MinBackoff and doubling up to MaxBackoff (capped at the
	// library's default); its MaxRetries counts attempts (zero would mean
	// forever).
	maxBackoff := cfg.RetryBackoff
	for i := 1; i < attempts && maxBackoff < lokiclient.MaxBackoff; i++ {
		maxBackoff *= 2
	}
	if maxBackoff > lokiclient.MaxBackoff {
		maxBackoff = max(cfg.RetryBackoff, lokiclient.MaxBackoff)
	}
	return lokiclient.Config{
		URL:       urlutil.URLValue{URL: push},
		BatchWait: cfg.BatchWait,
		BatchSize: cfg.BatchBytes,
		Timeout:   cfg.Timeout,
		TenantID:  cfg.TenantID,
		BackoffConfig: backoff.BackoffConfig{
			MinBackoff: cfg.RetryBackoff,
			MaxBackoff: maxBackoff,
			MaxRetries: attempts,
		},
	}
}

// Enqueue queues a copy of logs for Loki and reports whether it fit; a
// batch that does not fit is dropped and counted. It never blocks.
func (f *Forwarder) Enqueue(logs []store.LogRecord) bool {
	return f.q.Enqueue(logs)
}

// Close stops accepting records and pushes what is queued until ctx
// ends; records still queued then are dropped (DropClosed) and it
// returns ctx's error. A push the client is sending or retrying when ctx
// ends goes on in the background until the client gives up on it (at
// most the retries' timeouts and backoffs); the metrics count its
// outcome then. Close may be called again, for instance to wait for
// that.
func (f *Forwarder) Close(ctx context.Context) error {
	err := f.q.Close(ctx)
	// The queue's goroutine has returned: nothing sends on handoff.
	f.closeOnce.Do(func() { close(f.handoff) })
	if err != nil {
		return fmt.Errorf("loki: %w", err)
	}
	select {
	case <-f.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("loki: close: %w", ctx.Err())
	}
}

// send hands records to feed one at a time. It runs on the queue's one
// goroutine and blocks while the client is busy, so the queue bounds
// what waits; once Close gives up (ctx ends) the rest is dropped.
func (f *Forwarder) send(ctx context.Context, logs []store.LogRecord) {
	for i := range logs {
		if ctx.Err() == nil {
			select {
			case f.handoff <- logs[i]:
				continue
			case <-ctx.Done():
			}
		}
		f.metrics.Drop(DropClosed, len(logs)-i)
		f.cfg.Logger.Warn("loki: dropping log records: closed before they were pushed", "records", len(logs)-i)
		return
	}
}

// feed gives records to the client until Close, then stops the client,
// which pushes what it holds (with retries), and takes its last counts.
func (f *Forwarder) feed() {
	for r := range f.handoff {
		// Handle only ever returns nil; it blocks while a batch is sent.
		_ = f.client.HandleWithMetadata(streamLabels(&r), r.Time, r.Body, metadataOf(&r))
	}
	f.client.Stop()
	close(f.stopCounts)
	<-f.countsDone
	f.takeCounts()
	close(f.stopped)
}

// countLoop keeps the metrics within countsEvery of the client's
// counters while it runs.
func (f *Forwarder) countLoop() {
	defer close(f.countsDone)
	t := time.NewTicker(countsEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			f.takeCounts()
		case <-f.stopCounts:
			return
		}
	}
}

// takeCounts adds what the client's counters for f.host gained since the
// last look to the Forwarder's metrics.
func (f *Forwarder) takeCounts() {
	f.countsMu.Lock()
	defer f.countsMu.Unlock()
	now, ok := readClientCounts(f.gatherer, f.host)
	if !ok {
		return
	}
	var d clientCounts
	d, f.countsSeen = now.since(f.countsSeen)
	f.metrics.Forwarded.Add(float64(d.sent))
	f.metrics.Dropped.WithLabelValues(DropPush).Add(float64(d.dropped))
	f.metrics.Requests.WithLabelValues("ok").Add(float64(d.pushesOK))
	f.metrics.Requests.WithLabelValues("error").Add(float64(d.pushesError))
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
