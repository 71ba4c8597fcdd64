// Package api serves the control plane's JSON query API: services and
// their health, trace search, one trace's spans, and log search. The
// dashboard and the CLI read the same store through the same filters.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// Reader is what the API reads from the store.
type Reader interface {
	Traces(ctx context.Context, f store.TraceFilter) ([]store.TraceSummary, error)
	Trace(ctx context.Context, traceID string) ([]store.Span, error)
	Logs(ctx context.Context, f store.LogFilter) ([]store.LogRecord, error)
}

// Services is what the API reads from the registry.
type Services interface {
	Services(now time.Time) []registry.Service
}

// Handler serves /api/v1 query endpoints.
type Handler struct {
	store    Reader
	services Services
	now      func() time.Time
	log      *slog.Logger
}

// New returns a Handler. now and log may be nil.
func New(r Reader, s Services, now func() time.Time, log *slog.Logger) *Handler {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{store: r, services: s, now: now, log: log}
}

// Register mounts the endpoints on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/services", h.listServices)
	mux.HandleFunc("GET /api/v1/traces", h.listTraces)
	mux.HandleFunc("GET /api/v1/traces/{traceID}", h.getTrace)
	mux.HandleFunc("GET /api/v1/logs", h.listLogs)
}

func (h *Handler) listServices(w http.ResponseWriter, r *http.Request) {
	svcs := h.services.Services(h.now())
	if svcs == nil {
		svcs = []registry.Service{}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"services": svcs})
}

func (h *Handler) listTraces(w http.ResponseWriter, r *http.Request) {
	f, err := ParseTraceFilter(r.URL.Query(), h.now())
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	traces, err := h.store.Traces(r.Context(), f)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	if traces == nil {
		traces = []store.TraceSummary{}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"traces": traces})
}

func (h *Handler) getTrace(w http.ResponseWriter, r *http.Request) {
	id, err := ParseTraceID(r.PathValue("traceID"))
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	spans, err := h.store.Trace(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		WriteJSON(w, http.StatusNotFound, map[string]string{"error": "trace " + id + " not found", "field": "traceID"})
		return
	}
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"trace_id": id, "spans": spans})
}

func (h *Handler) listLogs(w http.ResponseWriter, r *http.Request) {
	f, err := ParseLogFilter(r.URL.Query(), h.now())
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	logs, err := h.store.Logs(r.Context(), f)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	if logs == nil {
		logs = []store.LogRecord{}
	}
	resp := map[string]any{"logs": logs}
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	// A page holding lines only Loki had carries no store sequence
	// numbers (Seq 0): it has no cursor to page on.
	if len(logs) == limit && logs[len(logs)-1].Seq > 0 {
		resp["next_before"] = logs[len(logs)-1].Seq
	}
	WriteJSON(w, http.StatusOK, resp)
}

// storeError answers a failed store query with 503, unless the client
// hung up (which cut the query short): then there is no one to answer and
// nothing failed.
func (h *Handler) storeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	h.log.Error("api: store query failed", "err", err)
	w.Header().Set("Retry-After", "1")
	WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store unavailable: " + err.Error()})
}

// WriteJSON writes v with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes err as {"error": ..., "field": ...}.
func WriteError(w http.ResponseWriter, code int, err error) {
	var pe *ParamError
	if errors.As(err, &pe) {
		WriteJSON(w, code, pe)
		return
	}
	WriteJSON(w, code, map[string]string{"error": err.Error()})
}
