// Package policyapi serves policies over HTTP: the operators' API to read,
// change, diff and roll back a service's policy, and the agents' long-poll
// that delivers a new version the moment it is written.
package policyapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/api"
	"github.com/pilothouse/pilothouse/controlplane/jsonbody"
	"github.com/pilothouse/pilothouse/controlplane/policy"
)

// Store is what the handlers need from the policy store.
type Store interface {
	Current(service string) wire.Policy
	Watch(service string) (wire.Policy, <-chan struct{})
	WatchVersion(service string) (int64, <-chan struct{})
	Put(ctx context.Context, p wire.Policy, base int64, by policy.Author) (wire.Policy, error)
	Rollback(ctx context.Context, service string, to, base int64, by policy.Author) (wire.Policy, error)
	History(ctx context.Context, service string, limit int) ([]policy.Change, error)
	Services() []string
}

// Config configures the handlers.
type Config struct {
	Store Store
	// Actor names who makes a change from the request; nil means
	// "anonymous" (until authentication is in place).
	Actor func(r *http.Request) string
	// AuthenticateAgent checks an agent's token on the long-poll; nil
	// accepts every agent.
	AuthenticateAgent func(r *http.Request) error
	// OnChange, if set, is called after a successful PUT or rollback
	// with the stored change (who, what, diff): the audit hook.
	OnChange func(r *http.Request, c policy.Change)
}

// Handler serves the policy endpoints.
type Handler struct {
	cfg Config

	// answers caches each service's encoded long-poll answer, so a change
	// woken to a thousand agents is encoded once, not a thousand times.
	mu      sync.Mutex
	answers map[string]encodedAnswer
}

type encodedAnswer struct {
	version int64
	body    []byte
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Actor == nil {
		cfg.Actor = func(*http.Request) string { return "anonymous" }
	}
	return &Handler{cfg: cfg, answers: map[string]encodedAnswer{}}
}

// answer returns the encoded PolicyUpdate of service's current policy.
func (h *Handler) answer(service string) []byte {
	cur := h.cfg.Store.Current(service)
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.answers[service]; ok && a.version == cur.Version {
		return a.body
	}
	body, err := json.Marshal(wire.PolicyUpdate{Policy: cur})
	if err != nil {
		return nil
	}
	body = append(body, '\n')
	h.answers[service] = encodedAnswer{version: cur.Version, body: body}
	return body
}

// cachedAnswer returns the encoded answer if it is for version.
func (h *Handler) cachedAnswer(service string, version int64) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.answers[service]; ok && a.version == version {
		return a.body
	}
	return nil
}

// Register mounts the endpoints on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/policies", h.list)
	mux.HandleFunc("GET /api/v1/policies/{service}", h.get)
	mux.HandleFunc("PUT /api/v1/policies/{service}", h.put)
	mux.HandleFunc("GET /api/v1/policies/{service}/history", h.history)
	mux.HandleFunc("POST /api/v1/policies/{service}/rollback", h.rollback)
	mux.HandleFunc("GET "+wire.PathPolicy, h.longPoll)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	services := h.cfg.Store.Services()
	out := make([]wire.Policy, 0, len(services))
	for _, s := range services {
		out = append(out, h.cfg.Store.Current(s))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"policies": out})
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, h.cfg.Store.Current(r.PathValue("service")))
}

// put stores the body as the next version. The body's "version" is the
// version the edit was based on; a stale one gets 409.
func (h *Handler) put(w http.ResponseWriter, r *http.Request) {
	service := r.PathValue("service")
	p, err := wire.DecodePolicy(http.MaxBytesReader(w, r.Body, wire.MaxPolicyBytes+1))
	if err != nil {
		writePolicyError(w, err)
		return
	}
	if p.Service != service {
		api.WriteJSON(w, http.StatusBadRequest, wire.FieldError{Field: "service", Message: "must match the service in the URL, " + service})
		return
	}
	stored, err := h.cfg.Store.Put(r.Context(), p, p.Version, h.author(r))
	if err != nil {
		writePolicyError(w, err)
		return
	}
	h.changed(r, stored)
	api.WriteJSON(w, http.StatusOK, stored)
}

func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			api.WriteJSON(w, http.StatusBadRequest, wire.FieldError{Field: "limit", Message: "must be a whole number from 1 to 10000"})
			return
		}
		limit = n
	}
	changes, err := h.cfg.Store.History(r.Context(), r.PathValue("service"), limit)
	if err != nil {
		writePolicyError(w, err)
		return
	}
	if changes == nil {
		changes = []policy.Change{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"changes": changes})
}

// RollbackRequest is the body of POST .../rollback.
type RollbackRequest struct {
	// To is the version whose rules come back.
	To int64 `json:"to"`
	// BaseVersion is the current version the operator saw.
	BaseVersion int64  `json:"base_version"`
	Reason      string `json:"reason,omitempty"`
}

func (h *Handler) rollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	if err := jsonbody.Decode(w, r, 64<<10, &req); err != nil {
		e := jsonbody.AsError(err)
		api.WriteJSON(w, e.Status, wire.FieldError{Field: e.Field, Message: e.Message + ` (want {"to": N, "base_version": M})`})
		return
	}
	if req.To < 1 {
		api.WriteJSON(w, http.StatusBadRequest, wire.FieldError{Field: "to", Message: "must be a stored version, 1 or more"})
		return
	}
	by := h.author(r)
	if req.Reason != "" {
		by.Reason = req.Reason
	}
	stored, err := h.cfg.Store.Rollback(r.Context(), r.PathValue("service"), req.To, req.BaseVersion, by)
	if err != nil {
		writePolicyError(w, err)
		return
	}
	h.changed(r, stored)
	api.WriteJSON(w, http.StatusOK, stored)
}

// changed hands the stored change to OnChange.
func (h *Handler) changed(r *http.Request, stored wire.Policy) {
	if h.cfg.OnChange == nil {
		return
	}
	changes, err := h.cfg.Store.History(r.Context(), stored.Service, 1)
	if err != nil || len(changes) == 0 || changes[0].Version != stored.Version {
		// The change is stored; report what is known without its diff.
		h.cfg.OnChange(r, policy.Change{Service: stored.Service, Version: stored.Version, Actor: h.cfg.Actor(r), Remote: r.RemoteAddr, Policy: stored})
		return
	}
	h.cfg.OnChange(r, changes[0])
}

func (h *Handler) author(r *http.Request) policy.Author {
	return policy.Author{Actor: h.cfg.Actor(r), Remote: r.RemoteAddr, Reason: r.URL.Query().Get("reason")}
}

// longPoll answers an agent at once when its version is not the current
// one, else when the policy changes or the wait ends (304).
func (h *Handler) longPoll(w http.ResponseWriter, r *http.Request) {
	if h.cfg.AuthenticateAgent != nil {
		if err := h.cfg.AuthenticateAgent(r); err != nil {
			api.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
			return
		}
	}
	q := r.URL.Query()
	service := q.Get("service")
	if service == "" || len(service) > wire.MaxNameLen {
		api.WriteJSON(w, http.StatusBadRequest, wire.FieldError{Field: "service", Message: "is required"})
		return
	}
	have, err := strconv.ParseInt(q.Get("version"), 10, 64)
	if q.Get("version") == "" {
		have, err = -1, nil
	}
	if err != nil {
		api.WriteJSON(w, http.StatusBadRequest, wire.FieldError{Field: "version", Message: "must be a whole number"})
		return
	}
	wait := wire.DefaultPolicyWait
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > wire.MaxPolicyWait {
			api.WriteJSON(w, http.StatusBadRequest, wire.FieldError{Field: "wait", Message: "must be a duration from 0s to " + wire.MaxPolicyWait.String()})
			return
		}
		wait = d
	}
	version, changed := h.cfg.Store.WatchVersion(service)
	if version == have {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-changed:
			version, _ = h.cfg.Store.WatchVersion(service)
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
	body := h.cachedAnswer(service, version)
	if body == nil {
		body = h.answer(service)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func writePolicyError(w http.ResponseWriter, err error) {
	var ce *policy.ConflictError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ce):
		api.WriteJSON(w, http.StatusConflict, map[string]any{"error": ce.Error(), "field": "version", "current_version": ce.Current})
	case errors.Is(err, policy.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "policy store unavailable, try again shortly"})
	case errors.Is(err, wire.ErrTooLarge), errors.As(err, &mbe):
		api.WriteJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "policy larger than 1 MiB"})
	case errors.Is(err, os.ErrDeadlineExceeded):
		api.WriteJSON(w, http.StatusRequestTimeout, map[string]string{"error": "policyapi: timed out reading the request body"})
	case errors.Is(err, policy.ErrNotFound):
		api.WriteJSON(w, http.StatusNotFound, map[string]string{"error": err.Error(), "field": "to"})
	default:
		if es, ok := wire.AsFieldErrors(err); ok {
			body := map[string]any{"error": es.Error(), "errors": []wire.FieldError(es)}
			if len(es) > 0 {
				body["field"] = es[0].Field
			}
			api.WriteJSON(w, http.StatusBadRequest, body)
			return
		}
		api.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}
