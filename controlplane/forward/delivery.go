package forward

import (
	"log/slog"
	"net/http"
	"time"
)

// Defaults for zero Delivery fields.
const (
	DefaultQueueBatches = 1024
	DefaultTimeout      = 10 * time.Second
	DefaultRetries      = 2
	DefaultRetryBackoff = 500 * time.Millisecond
)

// Delivery is how a forwarder queues and sends, the same for every
// backend; each forwarder's config embeds it. Zero values mean the
// defaults.
type Delivery struct {
	// QueueBatches bounds the batches waiting to be sent; a batch that
	// does not fit is dropped and counted.
	QueueBatches int
	// Timeout bounds one request to the backend.
	Timeout time.Duration
	// Retries is how often a request that failed with a network error,
	// 429 or 5xx is retried before its items are dropped; negative means
	// none.
	Retries int
	// RetryBackoff is the wait before the first retry; it doubles.
	RetryBackoff time.Duration
	// Client sends the requests; nil means a client without a timeout of
	// its own (Timeout applies per request).
	Client *http.Client
	// Logger receives send failures; nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns d with every zero field set to its default.
func (d Delivery) WithDefaults() Delivery {
	if d.QueueBatches <= 0 {
		d.QueueBatches = DefaultQueueBatches
	}
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	if d.Retries == 0 {
		d.Retries = DefaultRetries
	}
	if d.RetryBackoff <= 0 {
		d.RetryBackoff = DefaultRetryBackoff
	}
	if d.Client == nil {
		d.Client = &http.Client{}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}
