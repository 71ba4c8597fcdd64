package tracebackend

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/controlplane/ingest"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// Kind names the HTTP API a Reader speaks.
type Kind string

// Supported backends. Both serve a trace at /api/traces/{id}.
const (
	Jaeger Kind = "jaeger"
	Tempo  Kind = "tempo"
)

// MaxTraceBytes is the default cap on an answer read.
const MaxTraceBytes = 64 << 20

// Errors of the read side. A trace the backend does not know wraps
// store.ErrNotFound, so callers treat both sources alike.
var (
	// ErrRead reports a failed or malformed answer.
	ErrRead = errors.New("tracebackend: read failed")
	// ErrBadTraceID reports a trace ID that is not 16 or 32 hex digits.
	ErrBadTraceID = errors.New("tracebackend: bad trace ID")
)

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	// Kind is Jaeger or Tempo.
	Kind Kind
	// URL is the query API's base URL (http://jaeger:16686,
	// http://tempo:3200).
	URL string
	// TenantID, when set, is sent as X-Scope-OrgID (Tempo multi-tenancy).
	TenantID string
	// Client sends the requests; nil means a client with a 30s timeout.
	Client *http.Client
	// MaxAnswerBytes caps an answer read (a trace or a search); a longer
	// one is an error wrapping ErrRead. Zero means MaxTraceBytes.
	MaxAnswerBytes int64
	// Now is the clock used to close a Tempo search window left open;
	// nil means time.Now.
	Now func() time.Time
}

// Reader fetches traces by ID and searches them. It is safe for
// concurrent use.
type Reader struct {
	cfg  ReaderConfig
	base string
}

// NewReader returns a reader for the backend at cfg.URL.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	if cfg.Kind != Jaeger && cfg.Kind != Tempo {
		return nil, fmt.Errorf("tracebackend: kind %q: want %s or %s", cfg.Kind, Jaeger, Tempo)
	}
	if cfg.URL == "" {
		return nil, ErrNoURL
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracebackend: URL %q: want http(s)://host[:port]", cfg.URL)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.MaxAnswerBytes <= 0 {
		cfg.MaxAnswerBytes = MaxTraceBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reader{cfg: cfg, base: strings.TrimRight(cfg.URL, "/")}, nil
}

// Trace returns the spans of one trace ordered by start, like
// store.Store.Trace. An unknown trace gives an error wrapping
// store.ErrNotFound.
func (r *Reader) Trace(ctx context.Context, traceID string) ([]store.Span, error) {
	id := strings.ToLower(traceID)
	if (len(id) != 32 && len(id) != 16) || !isHex(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadTraceID, traceID)
	}
	status, body, err := r.get(ctx, "/api/traces/"+id, nil)
	if err != nil {
		return nil, err
	}
	switch {
	case status == http.StatusNotFound:
		return nil, fmt.Errorf("tracebackend: trace %s: %w", id, store.ErrNotFound)
	case status != http.StatusOK:
		return nil, fmt.Errorf("%w: %d %s: %s", ErrRead, status, http.StatusText(status), errorText(body))
	}
	var spans []store.Span
	if r.cfg.Kind == Jaeger {
		spans, err = DecodeJaeger(body)
	} else {
		spans, err = DecodeTempo(body)
	}
	if err != nil {
		return nil, err
	}
	if len(spans) == 0 {
		return nil, fmt.Errorf("tracebackend: trace %s: %w", id, store.ErrNotFound)
	}
	return spans, nil
}

// get sends GET path?query and reads the answer, at most
// MaxTraceBytes of it. A context that ends gives its error.
func (r *Reader) get(ctx context.Context, path string, query url.Values) (status int, body []byte, err error) {
	u := r.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrRead, err)
	}
	req.Header.Set("Accept", "application/json")
	if r.cfg.TenantID != "" {
		req.Header.Set("X-Scope-OrgID", r.cfg.TenantID)
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		return 0, nil, fmt.Errorf("%w: %w", ErrRead, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, r.cfg.MaxAnswerBytes+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return 0, nil, ctx.Err()
	case err != nil:
		return 0, nil, fmt.Errorf("%w: %w", ErrRead, err)
	case int64(len(body)) > r.cfg.MaxAnswerBytes:
		return 0, nil, fmt.Errorf("%w: answer over %d bytes", ErrRead, r.cfg.MaxAnswerBytes)
	}
	return resp.StatusCode, body, nil
}

// errorText is the start of an error answer, for messages.
func errorText(body []byte) string {
	return strings.TrimSpace(string(body[:min(len(body), 512)]))
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// DecodeTempo maps Tempo's trace answer to spans ordered by start. It
// accepts /api/traces/{id} ({"batches": [ResourceSpans...]}), the v2 API
// ({"trace": {"resourceSpans": [...]}}) and plain OTLP/JSON
// ({"resourceSpans": [...]}); IDs may be base64 (protobuf JSON, as Tempo
// writes them) or hex (OTLP/JSON), and the older
// instrumentationLibrarySpans name is understood.
func DecodeTempo(body []byte) ([]store.Span, error) {
	var top struct {
		Batches       []json.RawMessage `json:"batches"`
		ResourceSpans []json.RawMessage `json:"resourceSpans"`
		Trace         *struct {
			ResourceSpans []json.RawMessage `json:"resourceSpans"`
		} `json:"trace"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("%w: decode Tempo trace: %w", ErrRead, err)
	}
	raw := append(top.Batches, top.ResourceSpans...)
	if top.Trace != nil {
		raw = append(raw, top.Trace.ResourceSpans...)
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}
	for i, rs := range raw {
		var generic any
		if err := json.Unmarshal(rs, &generic); err != nil {
			return nil, fmt.Errorf("%w: batch %d: %w", ErrRead, i, err)
		}
		normalized, err := json.Marshal(normalizeOTLP(generic))
		if err != nil {
			return nil, fmt.Errorf("%w: batch %d: %w", ErrRead, i, err)
		}
		m := &tracepb.ResourceSpans{}
		if err := opts.Unmarshal(normalized, m); err != nil {
			return nil, fmt.Errorf("%w: batch %d: %w", ErrRead, i, err)
		}
		req.ResourceSpans = append(req.ResourceSpans, m)
	}
	return spansOf(req)
}

// spansOf maps an export request through ingest's OTLP mapping.
func spansOf(req *coltracepb.ExportTraceServiceRequest) ([]store.Span, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRead, err)
	}
	spans, _, err := ingest.DecodeTraces(b, ingest.ContentTypeProtobuf)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRead, err)
	}
	sortByStart(spans)
	return spans, nil
}

// normalizeOTLP rewrites a decoded OTLP/JSON value for protojson: hex IDs
// become base64 and old field names the current ones.
func normalizeOTLP(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			switch k {
			case "instrumentationLibrarySpans":
				k = "scopeSpans"
			case "instrumentationLibrary":
				k = "scope"
			}
			if s, ok := val.(string); ok && (k == "traceId" || k == "spanId" || k == "parentSpanId") {
				out[k] = base64ID(s)
				continue
			}
			out[k] = normalizeOTLP(val)
		}
		return out
	case []any:
		for i := range x {
			x[i] = normalizeOTLP(x[i])
		}
		return x
	}
	return v
}

// base64ID re-encodes a hex trace or span ID (32 or 16 digits) as base64;
// anything else (already base64: 24 or 12 characters) is kept.
func base64ID(s string) string {
	if len(s) != 32 && len(s) != 16 {
		return s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return s
	}
	return base64.StdEncoding.EncodeToString(b)
}
