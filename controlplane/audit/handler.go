package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Page is the JSON answer of GET /api/v1/audit.
type Page struct {
	Events []Event `json:"events"`
	// NextBefore, when non-zero, is the "before" parameter of the next
	// (older) page.
	NextBefore int64 `json:"next_before,omitempty"`
}

// ParseFilter reads a Filter from query parameters: actor, action, since
// and until (RFC 3339), limit, before. The error names the bad parameter.
func ParseFilter(q map[string][]string) (Filter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f := Filter{Actor: get("actor"), Action: get("action")}
	var err error
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := get(p.name); v != "" {
			if *p.dst, err = time.Parse(time.RFC3339, v); err != nil {
				return Filter{}, &ParamError{Param: p.name, Message: "must be an RFC 3339 time"}
			}
		}
	}
	if v := get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > MaxLimit {
			return Filter{}, &ParamError{Param: "limit", Message: "must be a whole number from 1 to " + strconv.Itoa(MaxLimit)}
		}
	}
	if v := get("before"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil || f.Before < 1 {
			return Filter{}, &ParamError{Param: "before", Message: "must be an event id"}
		}
	}
	return f, nil
}

// ParamError is a query parameter at fault.
type ParamError struct {
	Param   string `json:"field"`
	Message string `json:"error"`
}

func (e *ParamError) Error() string { return "audit: " + e.Param + " " + e.Message }

// Handler serves GET /api/v1/audit: read-only, there is no route that
// changes an event. Access control is the caller's job.
func Handler(l *Log) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "audit: the audit log is read-only"})
			return
		}
		f, err := ParseFilter(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, err)
			return
		}
		page, err := ListPage(r.Context(), l, f)
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, ErrInvalid) {
				status = http.StatusBadRequest
			}
			writeJSON(w, status, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, page)
	})
}

// ListPage lists one page of f and says where the next one starts.
func ListPage(ctx context.Context, l *Log, f Filter) (Page, error) {
	switch {
	case f.Limit < 0 || f.Limit > MaxLimit:
		return Page{}, fmt.Errorf("%w: limit must be 1 to %d", ErrInvalid, MaxLimit)
	case f.Limit == 0:
		f.Limit = DefaultLimit
	}
	// One more than asked tells whether an older page exists.
	ask := f
	ask.Limit = f.Limit + 1
	events, err := l.list(ctx, ask)
	if err != nil {
		return Page{}, err
	}
	p := Page{Events: events}
	if len(events) > f.Limit {
		p.Events = events[:f.Limit]
		p.NextBefore = p.Events[f.Limit-1].ID
	}
	return p, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
