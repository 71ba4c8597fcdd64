package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// Policy page limits.
const (
	// DefaultPolicyHistory is how many versions the policy tab lists.
	DefaultPolicyHistory = 20
	maxPolicyHistory     = 500
	// maxFormBytes bounds a posted form: a rule with a 64 KiB fallback
	// body fits with room to spare.
	maxFormBytes = 256 << 10
	// maxReasonLen bounds the reason saved in the audit record.
	maxReasonLen = 1000
	anonymous    = "anonymous"
)

func (h *Handler) registerPolicies(mux *http.ServeMux) {
	mux.HandleFunc("GET /policies", h.policies)
	mux.HandleFunc("GET /services/{name}/policy", h.policyTab)
	mux.HandleFunc("GET /services/{name}/policy/status", h.policyStatus)
	mux.HandleFunc("GET /services/{name}/policy/new/{kind}", h.ruleForm)
	mux.HandleFunc("GET /services/{name}/policy/{kind}/{id}", h.ruleForm)
	mux.HandleFunc("POST /services/{name}/policy/{kind}", h.saveRule)
	mux.HandleFunc("POST /services/{name}/policy/{kind}/{id}", h.saveRule)
	mux.HandleFunc("POST /services/{name}/policy/{kind}/{id}/delete", h.deleteRule)
	mux.HandleFunc("POST /services/{name}/policy/degradations/{id}/toggle", h.toggleDegradation)
	mux.HandleFunc("POST /services/{name}/policy/rollback", h.rollback)
}

func (h *Handler) csrfToken(r *http.Request) string {
	if h.cfg.csrf == nil {
		return ""
	}
	return h.cfg.csrf(r)
}

// author is who makes a change: the WithUser name, else "anonymous".
func (h *Handler) author(r *http.Request, reason string) Author {
	a := Author{Actor: anonymous, Remote: r.RemoteAddr, Reason: reason}
	if h.cfg.user != nil {
		if u := h.cfg.user(r); u != "" {
			a.Actor = u
		}
	}
	return a
}

// serviceMarkers are the policy changes drawn on the service page's chart.
func (h *Handler) serviceMarkers(r *http.Request, service string, series []Point) []sparkMarker {
	if h.cfg.policies == nil || len(series) < 2 {
		return nil
	}
	changes, err := h.cfg.policies.PolicyChanges(r.Context(), service, series[0].Time, h.cfg.now())
	if err != nil {
		h.cfg.log.Warn("ui: policy changes unavailable", "service", service, "err", err)
		return nil
	}
	return policyMarkers(series, changes)
}

func (h *Handler) policies(w http.ResponseWriter, r *http.Request) {
	sums, err := h.cfg.policies.PolicyServices(r.Context(), h.cfg.now())
	if err != nil {
		h.sourceError(w, r, "Policies", err)
		return
	}
	rows := make([]policiesRow, len(sums))
	for i, s := range sums {
		rows[i] = newPoliciesRow(s)
	}
	h.render(w, r, http.StatusOK, h.meta(r, "Policies", "policies"), policiesView(rows))
}

// policyProps is everything the policy tab renders.
type policyProps struct {
	Detail   PolicyDetail
	Now      time.Time
	Conv     convergence
	Tables   []kindTable
	History  []historyRow
	More     string // link to a longer history, if there may be one
	Chart    sparkline
	Flash    string
	Error    string
	Conflict *ConflictError
	CSRF     string
	Refresh  time.Duration
}

// historyRow is one version in the history table.
type historyRow struct {
	PolicyChange
	Lines   []diffLine
	Current bool
}

func (h *Handler) loadPolicy(r *http.Request, history int) (policyProps, error) {
	service := r.PathValue("name")
	now := h.cfg.now()
	d, err := h.cfg.policies.Policy(r.Context(), service, now, history)
	if err != nil {
		return policyProps{}, err
	}
	d.Service = service
	p := policyProps{Detail: d, Now: now, Conv: newConvergence(d.Policy.Version, d.Instances), Tables: ruleTables(&d.Policy, d.Counters),
		CSRF: h.csrfToken(r), Refresh: h.cfg.refresh}
	p.Chart = newSparkline(d.Series)
	p.Chart.Wide = true
	p.Chart.Markers = policyMarkers(d.Series, d.History)
	for _, c := range d.History {
		p.History = append(p.History, historyRow{PolicyChange: c, Lines: diffLines(c.Diff), Current: c.Version == d.Policy.Version})
	}
	if history > 0 && len(d.History) == history && history < maxPolicyHistory {
		p.More = policyURL(service) + "?" + query("history", strconv.Itoa(min(history*5, maxPolicyHistory)))
	}
	return p, nil
}

func parseHistory(v url.Values) (int, error) {
	s := v.Get("history")
	if s == "" {
		return DefaultPolicyHistory, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPolicyHistory {
		return 0, &ParamError{Param: "history", Value: s, Reason: fmt.Sprintf("must be a number of versions from 1 to %d", maxPolicyHistory)}
	}
	return n, nil
}

func (h *Handler) policyTab(w http.ResponseWriter, r *http.Request) {
	history, err := parseHistory(r.URL.Query())
	if err != nil {
		h.renderError(w, r, http.StatusBadRequest, paramMessage(err))
		return
	}
	p, err := h.loadPolicy(r, history)
	if err != nil {
		h.sourceError(w, r, "Service "+strconv.Quote(r.PathValue("name")), err)
		return
	}
	if v := r.URL.Query().Get("saved"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			p.Flash = "Saved version " + strconv.FormatInt(n, 10) + "."
		}
	}
	h.renderPolicy(w, r, http.StatusOK, p)
}

// renderPolicy answers with the policy tab: the whole page, or for htmx
// the tab's fragment that its forms swap.
func (h *Handler) renderPolicy(w http.ResponseWriter, r *http.Request, status int, p policyProps) {
	var c templ.Component = policyPage(p)
	if isPartial(r) {
		c = policyView(p)
	}
	h.render(w, r, status, h.meta(r, p.Detail.Service+" policy", "policies"), c)
}

func (h *Handler) policyStatus(w http.ResponseWriter, r *http.Request) {
	p, err := h.loadPolicy(r, 0)
	if err != nil {
		h.sourceError(w, r, "Service "+strconv.Quote(r.PathValue("name")), err)
		return
	}
	h.render(w, r, http.StatusOK, h.meta(r, p.Detail.Service+" policy status", "policies"), policyStatusView(p))
}

// ruleForm shows the form to create a rule (/new/{kind}) or edit one.
func (h *Handler) ruleForm(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindByKey(r.PathValue("kind"))
	if !ok {
		h.renderError(w, r, http.StatusNotFound, fmt.Sprintf("There is no rule kind %q.", r.PathValue("kind")))
		return
	}
	service, id := r.PathValue("name"), r.PathValue("id")
	d, err := h.cfg.policies.Policy(r.Context(), service, h.cfg.now(), 0)
	if err != nil {
		h.sourceError(w, r, "Service "+strconv.Quote(service), err)
		return
	}
	values := url.Values{}
	if kind.Key == kindDegradations {
		values.Set("fallback.status", "503")
		values.Set("fallback.content_type", "application/json")
	}
	if id != "" {
		i := ruleIndex(&d.Policy, kind.Key, id)
		if i < 0 {
			h.renderError(w, r, http.StatusNotFound, fmt.Sprintf("%s has no %s %q.", service, strings.ToLower(kind.Title), id))
			return
		}
		values = ruleValues(&d.Policy, kind.Key, i)
	}
	p := ruleFormProps{Service: service, Kind: kind, OrigID: id, Base: d.Policy.Version, CSRF: h.csrfToken(r)}
	p.Sections = ruleSections(kind.Key, values)
	fillSections(p.Sections, values, nil)
	h.renderRuleForm(w, r, http.StatusOK, p)
}

func (h *Handler) renderRuleForm(w http.ResponseWriter, r *http.Request, status int, p ruleFormProps) {
	var c templ.Component = ruleFormPage(p)
	if isPartial(r) {
		c = ruleFormView(p)
	}
	h.render(w, r, status, h.meta(r, p.title()+" · "+p.Service, "policies"), c)
}

// postForm reads a posted form, the version it was based on and its
// reason; on failure it has answered.
func (h *Handler) postForm(w http.ResponseWriter, r *http.Request) (base int64, reason string, ok bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		h.renderError(w, r, status, "The form could not be read: "+err.Error())
		return 0, "", false
	}
	base, err := strconv.ParseInt(r.PostForm.Get("base"), 10, 64)
	if err != nil || base < 0 {
		h.renderError(w, r, http.StatusBadRequest, "The form lacks the policy version it was based on; reload the page.")
		return 0, "", false
	}
	reason = strings.TrimSpace(r.PostForm.Get("reason"))
	if len(reason) > maxReasonLen {
		h.renderError(w, r, http.StatusBadRequest, fmt.Sprintf("The reason is longer than %d bytes.", maxReasonLen))
		return 0, "", false
	}
	return base, reason, true
}

// saveRule creates (POST .../policy/{kind}) or replaces (POST
// .../policy/{kind}/{id}) one rule as a new policy version.
func (h *Handler) saveRule(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindByKey(r.PathValue("kind"))
	if !ok {
		h.renderError(w, r, http.StatusNotFound, fmt.Sprintf("There is no rule kind %q.", r.PathValue("kind")))
		return
	}
	base, reason, ok := h.postForm(w, r)
	if !ok {
		return
	}
	service, orig := r.PathValue("name"), r.PathValue("id")
	ctx := r.Context()
	d, err := h.cfg.policies.Policy(ctx, service, h.cfg.now(), 0)
	if err != nil {
		h.sourceError(w, r, "Service "+strconv.Quote(service), err)
		return
	}
	pol := d.Policy
	pol.Service = service
	rule, shown, parseErrs := decodeRule(kind.Key, r.PostForm)
	form := ruleFormProps{Service: service, Kind: kind, OrigID: orig, Base: base, Reason: reason, CSRF: h.csrfToken(r)}
	form.Sections = ruleSections(kind.Key, shown)
	fail := func(status int, errs wire.FieldErrors, prefix string) {
		byField, general := fieldErrors(errs, prefix, sectionNames(form.Sections))
		form.Errors = append(form.Errors, general...)
		fillSections(form.Sections, shown, byField)
		h.renderRuleForm(w, r, status, form)
	}
	i := -1
	if orig != "" {
		if i = ruleIndex(&pol, kind.Key, orig); i < 0 {
			if pol.Version != base {
				form.Conflict = h.conflictText(ctx, service, base)
				fail(http.StatusConflict, nil, "")
				return
			}
			h.renderError(w, r, http.StatusNotFound, fmt.Sprintf("%s has no %s %q.", service, strings.ToLower(kind.Title), orig))
			return
		}
		if kind.Key == kindRateLimits {
			// The control plane's share of a cluster-wide rate is not
			// the form's to change.
			rl := rule.(wire.RateLimitRule)
			rl.InstanceRate = pol.RateLimits[i].InstanceRate
			rule = rl
		}
	}
	i = putRule(&pol, kind.Key, i, rule)
	prefix := fmt.Sprintf("%s[%d].", kind.Key, i)
	// Parse errors name fields inside the rule; validation errors name
	// them inside the policy.
	var errs wire.FieldErrors
	for _, e := range parseErrs {
		errs = append(errs, wire.FieldError{Field: prefix + e.Field, Message: e.Message})
	}
	if verr := pol.Validate(); verr != nil {
		fe, _ := wire.AsFieldErrors(verr)
		errs = append(errs, fe...)
	}
	if len(errs) > 0 {
		fail(http.StatusUnprocessableEntity, errs, prefix)
		return
	}
	if reason == "" {
		verb := "update"
		if orig == "" {
			verb = "create"
		}
		reason = verb + " " + strings.ToLower(kind.Title) + " " + ruleMetas(&pol, kind.Key)[i].ID
	}
	saved, err := h.cfg.policies.SavePolicy(ctx, pol, base, h.author(r, reason))
	if err != nil {
		var ce *ConflictError
		fe, isField := wire.AsFieldErrors(err)
		switch {
		case errors.As(err, &ce):
			form.Conflict = conflictMessage(ce)
			fail(http.StatusConflict, nil, "")
		case isField:
			fail(http.StatusUnprocessableEntity, fe, prefix)
		default:
			h.sourceError(w, r, "Policy of "+strconv.Quote(service), err)
		}
		return
	}
	redirect(w, r, policyURL(service)+"?"+query("saved", strconv.FormatInt(saved.Version, 10)))
}

func conflictMessage(ce *ConflictError) string {
	who := ce.Actor
	if who == "" {
		who = "someone"
	}
	return fmt.Sprintf("Changed by %s meanwhile (now version %d, you edited version %d) — reload to see it.", who, ce.Current, ce.Base)
}

// conflictText explains a conflict found before writing: the page was
// based on an old version.
func (h *Handler) conflictText(ctx context.Context, service string, base int64) string {
	return conflictMessage(h.staleBase(ctx, service, base))
}

// staleBase describes the conflict of an edit based on version base with
// whoever wrote the current version.
func (h *Handler) staleBase(ctx context.Context, service string, base int64) *ConflictError {
	ce := &ConflictError{Service: service, Base: base}
	if d, err := h.cfg.policies.Policy(ctx, service, h.cfg.now(), 1); err == nil {
		ce.Current = d.Policy.Version
		if len(d.History) > 0 {
			ce.Actor, ce.Time = d.History[0].Actor, d.History[0].Time
		}
	}
	return ce
}

// policyChange writes a change made on the policy tab (delete, toggle,
// rollback) and answers: a redirect back to the tab, or for htmx the tab
// re-rendered with the outcome.
func (h *Handler) policyChange(w http.ResponseWriter, r *http.Request, write func(p *wire.Policy, base int64, reason string) (wire.Policy, error)) {
	base, reason, ok := h.postForm(w, r)
	if !ok {
		return
	}
	service := r.PathValue("name")
	d, err := h.cfg.policies.Policy(r.Context(), service, h.cfg.now(), 0)
	if err != nil {
		h.sourceError(w, r, "Service "+strconv.Quote(service), err)
		return
	}
	pol := d.Policy
	pol.Service = service
	saved, err := write(&pol, base, reason)
	var ce *ConflictError
	var status int
	var flash, message string
	switch {
	case err == nil:
		if !isPartial(r) {
			redirect(w, r, policyURL(service)+"?"+query("saved", strconv.FormatInt(saved.Version, 10)))
			return
		}
		status, flash = http.StatusOK, "Saved version "+strconv.FormatInt(saved.Version, 10)+"."
	case errors.As(err, &ce):
		status = http.StatusConflict
	case errors.Is(err, ErrNotFound):
		if pol.Version != base {
			ce, status = h.staleBase(r.Context(), service, base), http.StatusConflict
			break
		}
		status, message = http.StatusNotFound, err.Error()
	default:
		if fe, ok := wire.AsFieldErrors(err); ok {
			status, message = http.StatusUnprocessableEntity, "The change is not valid: "+fe.Error()
			break
		}
		h.sourceError(w, r, "Policy of "+strconv.Quote(service), err)
		return
	}
	p, err := h.loadPolicy(r, DefaultPolicyHistory)
	if err != nil {
		h.sourceError(w, r, "Service "+strconv.Quote(service), err)
		return
	}
	p.Flash, p.Error, p.Conflict = flash, message, ce
	h.renderPolicy(w, r, status, p)
}

// errNoRule is answered 404 by policyChange, or as a conflict when the
// page was based on an older version (the rule may have been deleted).
func errNoRule(kind ruleKind, id string) error {
	return fmt.Errorf("ui: there is no %s %q: %w", strings.ToLower(kind.Title), id, ErrNotFound)
}

func (h *Handler) deleteRule(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindByKey(r.PathValue("kind"))
	if !ok {
		h.renderError(w, r, http.StatusNotFound, fmt.Sprintf("There is no rule kind %q.", r.PathValue("kind")))
		return
	}
	id := r.PathValue("id")
	h.policyChange(w, r, func(p *wire.Policy, base int64, reason string) (wire.Policy, error) {
		if !deleteRule(p, kind.Key, id) {
			return wire.Policy{}, errNoRule(kind, id)
		}
		if reason == "" {
			reason = "delete " + strings.ToLower(kind.Title) + " " + id
		}
		return h.cfg.policies.SavePolicy(r.Context(), *p, base, h.author(r, reason))
	})
}

func (h *Handler) toggleDegradation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	kind, _ := kindByKey(kindDegradations)
	h.policyChange(w, r, func(p *wire.Policy, base int64, reason string) (wire.Policy, error) {
		on := r.PostForm.Get("enabled") == "true"
		if !setDegradation(p, id, on) {
			return wire.Policy{}, errNoRule(kind, id)
		}
		if reason == "" {
			reason = "turn degradation " + id + " off"
			if on {
				reason = "turn degradation " + id + " on"
			}
		}
		return h.cfg.policies.SavePolicy(r.Context(), *p, base, h.author(r, reason))
	})
}

func (h *Handler) rollback(w http.ResponseWriter, r *http.Request) {
	h.policyChange(w, r, func(p *wire.Policy, base int64, reason string) (wire.Policy, error) {
		to, err := strconv.ParseInt(r.PostForm.Get("to"), 10, 64)
		if err != nil || to < 1 {
			return wire.Policy{}, fmt.Errorf("ui: rollback needs the version to return to: %w", ErrNotFound)
		}
		return h.cfg.policies.RollbackPolicy(r.Context(), p.Service, to, base, h.author(r, reason))
	})
}
