package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/jsonbody"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// SpanWriter stores decoded spans. It returns once they are durable.
type SpanWriter interface {
	WriteSpans(ctx context.Context, spans []store.Span) error
}

// LogWriter stores decoded log records. It returns once they are durable.
type LogWriter interface {
	WriteLogs(ctx context.Context, logs []store.LogRecord) error
}

// HeartbeatSink receives valid agent heartbeats.
type HeartbeatSink interface {
	Observe(hb wire.Heartbeat, remoteAddr string, now time.Time)
}

// Defaults for zero Config fields.
const (
	DefaultMaxBodyBytes         = 4 << 20
	DefaultMaxDecompressedBytes = 16 << 20
	DefaultReadTimeout          = 10 * time.Second
	DefaultMaxConcurrent        = 16
)

// Retry-After values sent when the store cannot take a write.
const (
	RetryAfterBusy        = 1 * time.Second
	RetryAfterUnavailable = 5 * time.Second
)

// Config configures a Handler. Zero fields take the defaults above; a nil
// writer or sink makes its endpoint answer 501 Not Implemented.
type Config struct {
	Spans      SpanWriter
	Logs       LogWriter
	Heartbeats HeartbeatSink
	// HeartbeatReply, if set, builds the answer to a valid heartbeat
	// (endpoints for discovery, rate shares, the current policy version);
	// nil answers {"ok":true}.
	HeartbeatReply func(hb wire.Heartbeat, now time.Time) wire.HeartbeatReply
	// Authenticate vets every request before its body is read; an error
	// gives 401. Nil lets every request in (see BearerToken).
	Authenticate func(r *http.Request) error
	// MaxBodyBytes caps the body as sent (compressed or not).
	MaxBodyBytes int64
	// MaxDecompressedBytes caps a gzip body once inflated (gzip bombs).
	MaxDecompressedBytes int64
	// ReadTimeout bounds reading the body, against slow clients. It needs
	// a server connection that supports read deadlines.
	ReadTimeout time.Duration
	// MaxConcurrent caps the OTLP requests read and decoded at once, which
	// bounds ingest memory; a request beyond it gets 429 with
	// Retry-After at once rather than queueing.
	MaxConcurrent int
	// Registerer receives the ingest metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now stamps heartbeats and log records without a timestamp.
	Now func() time.Time
}

// Handler serves the OTLP/HTTP traces and logs endpoints and the agent
// heartbeat endpoint. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	metrics *metrics
	bufs    sync.Pool // *bytes.Buffer for request bodies
	gzips   sync.Pool // *gzip.Reader
	slots   chan struct{}
}

// maxPooledBuffer keeps rare huge bodies from pinning memory in the pool.
const maxPooledBuffer = 1 << 20

// New returns a Handler for cfg.
func New(cfg Config) *Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxDecompressedBytes <= 0 {
		cfg.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{
		cfg:     cfg,
		metrics: newMetrics(cfg.Registerer),
		slots:   make(chan struct{}, cfg.MaxConcurrent),
	}
}

// Traces serves POST /v1/traces: an OTLP ExportTraceServiceRequest as
// protobuf or OTLP/JSON, optionally gzip-compressed.
func (h *Handler) Traces() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serveOTLP(w, r, signalTraces)
	})
}

// Logs serves POST /v1/logs: an OTLP ExportLogsServiceRequest as protobuf
// or OTLP/JSON, optionally gzip-compressed.
func (h *Handler) Logs() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serveOTLP(w, r, signalLogs)
	})
}

// Heartbeats serves POST /api/v1/agents/heartbeat: one JSON
// wire.Heartbeat. It answers 200 {"ok":true}, or 400 with the fields at
// fault.
func (h *Handler) Heartbeats() http.Handler {
	return http.HandlerFunc(h.serveHeartbeat)
}

// failure is an error answer: HTTP status, message and, where one field
// is at fault, its name.
type failure struct {
	status     int
	message    string
	field      string
	retryAfter time.Duration
	fields     wire.FieldErrors // heartbeats only
}

func (h *Handler) serveOTLP(w http.ResponseWriter, r *http.Request, signal string) {
	// Until the Content-Type is known to be protobuf, errors are JSON.
	enc := encodingJSON
	if f := h.admit(w, r, signal); f != nil {
		h.failOTLP(w, signal, enc, f)
		return
	}
	ct := r.Header.Get("Content-Type")
	enc, err := encodingOf(ct)
	if err != nil {
		h.failOTLP(w, signal, encodingJSON, &failure{status: http.StatusUnsupportedMediaType, message: err.Error(), field: "Content-Type"})
		return
	}
	if (signal == signalTraces && h.cfg.Spans == nil) || (signal == signalLogs && h.cfg.Logs == nil) {
		h.failOTLP(w, signal, enc, &failure{status: http.StatusNotImplemented, message: "ingest: " + signal + " are not stored by this server"})
		return
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		h.failOTLP(w, signal, enc, &failure{status: http.StatusTooManyRequests, message: "ingest: too many concurrent requests, retry later", retryAfter: RetryAfterBusy})
		return
	}
	buf := h.getBuffer()
	defer h.putBuffer(buf)
	if f := h.readBody(w, r, signal, buf, h.cfg.MaxBodyBytes); f != nil {
		h.failOTLP(w, signal, enc, f)
		return
	}

	var (
		rej    Rejected
		n      int
		stored error
	)
	switch signal {
	case signalTraces:
		var spans []store.Span
		spans, rej, err = DecodeTraces(buf.Bytes(), ct)
		if err == nil && len(spans) > 0 {
			n = len(spans)
			stored = h.cfg.Spans.WriteSpans(r.Context(), spans)
		}
	case signalLogs:
		var logs []store.LogRecord
		logs, rej, err = DecodeLogs(buf.Bytes(), ct)
		if err == nil && len(logs) > 0 {
			n = len(logs)
			now := h.cfg.Now().UTC()
			for i := range logs {
				if logs[i].Time.IsZero() {
					logs[i].Time = now
				}
			}
			stored = h.cfg.Logs.WriteLogs(r.Context(), logs)
		}
	}
	if err != nil {
		h.failOTLP(w, signal, enc, &failure{status: http.StatusBadRequest, message: err.Error(), field: jsonbody.FieldOf(err)})
		return
	}
	if stored != nil {
		h.failOTLP(w, signal, enc, storeFailure(stored))
		return
	}
	items := h.metrics.spans
	if signal == signalLogs {
		items = h.metrics.logs
	}
	items.WithLabelValues(resultAccepted).Add(float64(n))
	items.WithLabelValues(resultRejected).Add(float64(rej.Count))
	h.succeedOTLP(w, signal, enc, rej)
}

// admit checks the method and authentication.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, signal string) *failure {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return &failure{status: http.StatusMethodNotAllowed, message: "ingest: use POST"}
	}
	if h.cfg.Authenticate != nil {
		if err := h.cfg.Authenticate(r); err != nil {
			h.metrics.authFailures.Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="pilothouse"`)
			return &failure{status: http.StatusUnauthorized, message: err.Error(), field: wire.HeaderAuthorization}
		}
	}
	return nil
}

// readBody reads the request body into buf, inflating gzip, within the
// size caps (maxBody as sent, MaxDecompressedBytes inflated) and the
// read timeout.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, signal string, buf *bytes.Buffer, maxBody int64) (f *failure) {
	if r.ContentLength > maxBody {
		return tooLarge("body", maxBody)
	}
	// Read deadlines are wall-clock; the injected clock is for data.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(h.cfg.ReadTimeout)); err == nil {
		// Lift the deadline only after a good read. After a failed one
		// it must stay: before answering, net/http drains what is left
		// of the body, and a slow client would hold that drain open
		// forever; with the deadline passed it fails and the
		// connection is closed after the answer.
		defer func() {
			if f == nil {
				_ = rc.SetReadDeadline(time.Time{})
			}
		}()
	}
	counted := &countingReader{r: http.MaxBytesReader(w, r.Body, maxBody)}
	defer func() { h.metrics.bytes.WithLabelValues(signal).Add(float64(counted.n)) }()

	var src io.Reader = counted
	limit := maxBody
	what := "body"
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := h.gzipReader(counted)
		if err != nil {
			return bodyFailure(err, "gzip body", maxBody)
		}
		defer h.gzips.Put(zr)
		src, limit, what = zr, h.cfg.MaxDecompressedBytes, "gzip body"
	default:
		return &failure{
			status:  http.StatusUnsupportedMediaType,
			message: fmt.Sprintf("%v %q: want gzip or identity", ErrUnsupportedEncoding, ce),
			field:   "Content-Encoding",
		}
	}
	if _, err := buf.ReadFrom(io.LimitReader(src, limit+1)); err != nil {
		return bodyFailure(err, what, maxBody)
	}
	if int64(buf.Len()) > limit {
		return tooLarge("decompressed body", limit)
	}
	return nil
}

func (h *Handler) gzipReader(r io.Reader) (*gzip.Reader, error) {
	if zr, ok := h.gzips.Get().(*gzip.Reader); ok {
		if err := zr.Reset(r); err != nil {
			h.gzips.Put(zr)
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(r)
}

func (h *Handler) getBuffer() *bytes.Buffer {
	if b, ok := h.bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (h *Handler) putBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	h.bufs.Put(b)
}

func tooLarge(what string, limit int64) *failure {
	return &failure{
		status:  http.StatusRequestEntityTooLarge,
		message: fmt.Sprintf("%v: %s exceeds %d bytes", ErrTooLarge, what, limit),
	}
}

// bodyFailure classifies an error met while reading a body; what is
// "body" or "gzip body".
func bodyFailure(err error, what string, maxBody int64) *failure {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge("body", maxBody)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &failure{status: http.StatusRequestTimeout, message: "ingest: timed out reading the request body"}
	}
	f := &failure{status: http.StatusBadRequest, message: fmt.Sprintf("%v: %s: %v", ErrMalformed, what, err)}
	if what != "body" {
		f.field = "Content-Encoding"
	}
	return f
}

// storeFailure maps a writer error: a busy store (full write queue) is
// 429 and an unavailable one 503, both with Retry-After; input the store
// refuses is 400 and items the sender may not send 403, which clients do
// not retry.
func storeFailure(err error) *failure {
	switch {
	case errors.Is(err, ErrForbidden):
		return &failure{status: http.StatusForbidden, message: err.Error()}
	case isBusy(err):
		return &failure{status: http.StatusTooManyRequests, message: "ingest: store busy, retry later", retryAfter: RetryAfterBusy}
	case errors.Is(err, store.ErrInvalid):
		return &failure{status: http.StatusBadRequest, message: "ingest: " + err.Error()}
	default:
		return &failure{status: http.StatusServiceUnavailable, message: "ingest: store unavailable: " + err.Error(), retryAfter: RetryAfterUnavailable}
	}
}

// isBusy reports whether err says the store is temporarily overloaded:
// store.ErrBusy, or any error with a Busy() bool method returning true
// (for writers other than the embedded store).
func isBusy(err error) bool {
	if errors.Is(err, store.ErrBusy) {
		return true
	}
	var b interface{ Busy() bool }
	return errors.As(err, &b) && b.Busy()
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// succeedOTLP writes the 200 Export*ServiceResponse, with partial_success
// set when items were rejected.
func (h *Handler) succeedOTLP(w http.ResponseWriter, signal string, enc encoding, rej Rejected) {
	var body []byte
	switch enc {
	case encodingProto:
		var msg proto.Message
		if signal == signalTraces {
			resp := &coltracepb.ExportTraceServiceResponse{}
			if rej.Count > 0 {
				resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: rej.Count, ErrorMessage: rej.Message}
			}
			msg = resp
		} else {
			resp := &collogspb.ExportLogsServiceResponse{}
			if rej.Count > 0 {
				resp.PartialSuccess = &collogspb.ExportLogsPartialSuccess{RejectedLogRecords: rej.Count, ErrorMessage: rej.Message}
			}
			msg = resp
		}
		body, _ = proto.Marshal(msg) // these messages always marshal
	default:
		body = []byte("{}")
		if rej.Count > 0 {
			key := "rejectedSpans"
			if signal == signalLogs {
				key = "rejectedLogRecords"
			}
			// int64 is a string in protobuf JSON.
			body, _ = json.Marshal(map[string]map[string]string{
				"partialSuccess": {key: strconv.FormatInt(rej.Count, 10), "errorMessage": rej.Message},
			})
		}
	}
	h.write(w, signal, enc, http.StatusOK, body)
}

// failOTLP writes an error answer. Protobuf requests get a google.rpc.Status
// message as the OTLP/HTTP spec says; everything else gets JSON carrying
// both the Status fields (code, message) and the project's error shape
// (error, field).
func (h *Handler) failOTLP(w http.ResponseWriter, signal string, enc encoding, f *failure) {
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter/time.Second)))
	}
	code := rpcCode(f.status)
	var body []byte
	if enc == encodingProto {
		body, _ = proto.Marshal(&statuspb.Status{Code: int32(code), Message: f.message})
	} else {
		body, _ = json.Marshal(jsonError{Code: int32(code), Message: f.message, Error: f.message, Field: f.field})
	}
	h.write(w, signal, enc, f.status, body)
}

type jsonError struct {
	Code    int32  `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error"`
	Field   string `json:"field,omitempty"`
	// Errors lists every field at fault (heartbeats).
	Errors wire.FieldErrors `json:"errors,omitempty"`
}

func (h *Handler) write(w http.ResponseWriter, signal string, enc encoding, status int, body []byte) {
	ct := ContentTypeJSON
	if enc == encodingProto {
		ct = ContentTypeProtobuf
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	h.metrics.requests.WithLabelValues(signal, strconv.Itoa(status)).Inc()
}

// rpcCode maps an HTTP status to the google.rpc.Code carried in Status.
func rpcCode(status int) codes.Code {
	switch status {
	case http.StatusOK:
		return codes.OK
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusRequestTimeout:
		return codes.DeadlineExceeded
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	default:
		return codes.Unknown
	}
}

func (h *Handler) serveHeartbeat(w http.ResponseWriter, r *http.Request) {
	if f := h.admit(w, r, signalHeartbeats); f != nil {
		h.failHeartbeat(w, f)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if enc, err := encodingOf(ct); err != nil || enc != encodingJSON {
			h.failHeartbeat(w, &failure{status: http.StatusUnsupportedMediaType, message: fmt.Sprintf("%v %q: want %s", ErrUnsupportedMediaType, ct, ContentTypeJSON), field: "Content-Type"})
			return
		}
	}
	if h.cfg.Heartbeats == nil {
		h.failHeartbeat(w, &failure{status: http.StatusNotImplemented, message: "ingest: heartbeats are not accepted by this server"})
		return
	}
	buf := h.getBuffer()
	defer h.putBuffer(buf)
	if f := h.readBody(w, r, signalHeartbeats, buf, min(h.cfg.MaxBodyBytes, wire.MaxHeartbeatBytes)); f != nil {
		h.failHeartbeat(w, f)
		return
	}
	hb, err := DecodeHeartbeat(buf.Bytes())
	if err != nil {
		h.failHeartbeat(w, heartbeatFailure(err))
		return
	}
	now := h.cfg.Now()
	h.cfg.Heartbeats.Observe(hb, r.RemoteAddr, now)
	h.metrics.heartbeats.WithLabelValues(resultAccepted).Inc()
	reply := []byte(`{"ok":true}`)
	if h.cfg.HeartbeatReply != nil {
		if b, err := json.Marshal(h.cfg.HeartbeatReply(hb, now)); err == nil {
			reply = b
		}
	}
	h.write(w, signalHeartbeats, encodingJSON, http.StatusOK, reply)
}

// DecodeHeartbeat decodes and validates one JSON heartbeat body. The
// error wraps wire.ErrTooLarge, or carries wire.FieldErrors, or wraps
// ErrMalformed.
func DecodeHeartbeat(body []byte) (wire.Heartbeat, error) {
	hb, err := wire.DecodeHeartbeat(bytes.NewReader(body))
	if err == nil {
		return hb, nil
	}
	if _, ok := wire.AsFieldErrors(err); ok || errors.Is(err, wire.ErrTooLarge) {
		return hb, err
	}
	return hb, fmt.Errorf("%w: %w", ErrMalformed, err)
}

func heartbeatFailure(err error) *failure {
	if errors.Is(err, wire.ErrTooLarge) {
		return tooLarge("heartbeat", wire.MaxHeartbeatBytes)
	}
	if fes, ok := wire.AsFieldErrors(err); ok && len(fes) > 0 {
		return &failure{status: http.StatusBadRequest, message: fes.Error(), field: fes[0].Field, fields: fes}
	}
	return &failure{status: http.StatusBadRequest, message: err.Error(), field: jsonbody.FieldOf(err)}
}

func (h *Handler) failHeartbeat(w http.ResponseWriter, f *failure) {
	if f.status != http.StatusUnauthorized && f.status != http.StatusMethodNotAllowed {
		h.metrics.heartbeats.WithLabelValues(resultRejected).Inc()
	}
	body, _ := json.Marshal(jsonError{Error: f.message, Field: f.field, Errors: f.fields})
	h.write(w, signalHeartbeats, encodingJSON, f.status, body)
}
