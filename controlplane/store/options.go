package store

import (
	"fmt"
	"strings"
	"time"
)

// Defaults applied by Open to zero Options fields.
const (
	DefaultMaxAge            = 72 * time.Hour
	DefaultMaxBytes          = int64(1) << 30
	DefaultQueueSize         = 256
	DefaultRetentionInterval = time.Minute
	DefaultSynchronous       = "NORMAL"
	DefaultReadConns         = 4
)

// Options configure a Store. The zero value of every field means "use the
// default" as documented on the field.
type Options struct {
	// MaxAge is retention by age: spans, traces and logs older than this are
	// deleted. 0 means DefaultMaxAge (72h); a negative value keeps data forever.
	MaxAge time.Duration
	// MaxBytes is retention by size: when the data in the database file
	// (plus its write-ahead log) exceeds it, the oldest time slices are
	// deleted until it fits. 0 means DefaultMaxBytes (1 GiB); negative disables.
	MaxBytes int64
	// QueueSize bounds the number of write batches waiting for the writer.
	// A write that finds the queue full fails at once with ErrBusy.
	// 0 means DefaultQueueSize (256).
	QueueSize int
	// RetentionInterval is how often the background retention runs.
	// 0 means DefaultRetentionInterval (1m); negative disables the background
	// job (RunRetention can still be called).
	RetentionInterval time.Duration
	// Now is the clock used by background retention. nil means time.Now.
	Now func() time.Time
	// Synchronous is SQLite's synchronous setting for the writer: "NORMAL"
	// (default) or "FULL". In WAL mode NORMAL keeps every acknowledged write
	// across a crash or kill -9 of the process, because committed pages are
	// in the WAL file in the OS page cache; FULL additionally fsyncs the WAL
	// on every commit, which is needed to survive power loss or an OS crash,
	// at a throughput cost.
	Synchronous string
	// ReadConns is the size of the read connection pool. 0 means
	// DefaultReadConns.
	ReadConns int
	// WriteFault, when set, is called by the writer before each write
	// transaction; a non-nil error fails that transaction as a full or
	// failing disk would (the callers get it wrapped, WriteErrors counts
	// it, WriteFailure reports it). It is a seam for fault tests: leave it
	// nil in production.
	WriteFault func() error
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.RetentionInterval == 0 {
		o.RetentionInterval = DefaultRetentionInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ReadConns <= 0 {
		o.ReadConns = DefaultReadConns
	}
	o.Synchronous = strings.ToUpper(strings.TrimSpace(o.Synchronous))
	switch o.Synchronous {
	case "":
		o.Synchronous = DefaultSynchronous
	case "NORMAL", "FULL", "EXTRA":
	default:
		return o, fmt.Errorf("store: Synchronous %q: want NORMAL or FULL", o.Synchronous)
	}
	return o, nil
}
