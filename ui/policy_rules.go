package ui

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// Rule kinds, named like the policy's JSON fields so that validation paths
// ("degradations[2].fallback.status") name them too.
const (
	kindRateLimits   = "rate_limits"
	kindBreakers     = "breakers"
	kindDegradations = "degradations"
	kindRoutes       = "routes"
	kindTimeouts     = "timeouts"
)

// ruleKind describes one kind of rule for headings and links.
type ruleKind struct {
	Key    string
	Title  string // one rule: "Rate limit"
	Plural string // the section: "Rate limits"
}

func ruleKinds() []ruleKind {
	return []ruleKind{
		{kindRateLimits, "Rate limit", "Rate limits"},
		{kindBreakers, "Circuit breaker", "Circuit breakers"},
		{kindDegradations, "Degradation", "Degradations"},
		{kindRoutes, "Routing rule", "Routing"},
		{kindTimeouts, "Timeout", "Timeouts"},
	}
}

func kindByKey(key string) (ruleKind, bool) {
	for _, k := range ruleKinds() {
		if k.Key == key {
			return k, true
		}
	}
	return ruleKind{}, false
}

// ruleMeta returns the common part of every rule of a kind, in order.
func ruleMetas(p *wire.Policy, kind string) []wire.RuleMeta {
	var out []wire.RuleMeta
	switch kind {
	case kindRateLimits:
		for _, r := range p.RateLimits {
			out = append(out, r.RuleMeta)
		}
	case kindBreakers:
		for _, r := range p.Breakers {
			out = append(out, r.RuleMeta)
		}
	case kindDegradations:
		for _, r := range p.Degradations {
			out = append(out, r.RuleMeta)
		}
	case kindRoutes:
		for _, r := range p.Routes {
			out = append(out, r.RuleMeta)
		}
	case kindTimeouts:
		for _, r := range p.Timeouts {
			out = append(out, r.RuleMeta)
		}
	}
	return out
}

// ruleIndex is the position of rule id among the rules of a kind, or -1.
func ruleIndex(p *wire.Policy, kind, id string) int {
	return slices.IndexFunc(ruleMetas(p, kind), func(m wire.RuleMeta) bool { return m.ID == id })
}

func ruleCount(p *wire.Policy) int {
	return len(p.RateLimits) + len(p.Breakers) + len(p.Degradations) + len(p.Routes) + len(p.Timeouts)
}

// putRule replaces the rule of kind at index i with rule, or appends it
// when i < 0, and returns its index. The policy's slices are copied first:
// a policy read from a source shares them with the source.
func putRule(p *wire.Policy, kind string, i int, rule any) int {
	put := func(n int) int {
		if i < 0 {
			return n
		}
		return i
	}
	switch kind {
	case kindRateLimits:
		r := rule.(wire.RateLimitRule)
		p.RateLimits = setAt(slices.Clone(p.RateLimits), i, r)
		return put(len(p.RateLimits) - 1)
	case kindBreakers:
		p.Breakers = setAt(slices.Clone(p.Breakers), i, rule.(wire.BreakerRule))
		return put(len(p.Breakers) - 1)
	case kindDegradations:
		p.Degradations = setAt(slices.Clone(p.Degradations), i, rule.(wire.DegradationRule))
		return put(len(p.Degradations) - 1)
	case kindRoutes:
		p.Routes = setAt(slices.Clone(p.Routes), i, rule.(wire.RoutingRule))
		return put(len(p.Routes) - 1)
	case kindTimeouts:
		p.Timeouts = setAt(slices.Clone(p.Timeouts), i, rule.(wire.TimeoutRule))
		return put(len(p.Timeouts) - 1)
	}
	return -1
}

func setAt[T any](s []T, i int, v T) []T {
	if i < 0 || i >= len(s) {
		return append(s, v)
	}
	s[i] = v
	return s
}

// deleteRule removes rule id of kind; false when there is none.
func deleteRule(p *wire.Policy, kind, id string) bool {
	i := ruleIndex(p, kind, id)
	if i < 0 {
		return false
	}
	switch kind {
	case kindRateLimits:
		p.RateLimits = slices.Delete(slices.Clone(p.RateLimits), i, i+1)
	case kindBreakers:
		p.Breakers = slices.Delete(slices.Clone(p.Breakers), i, i+1)
	case kindDegradations:
		p.Degradations = slices.Delete(slices.Clone(p.Degradations), i, i+1)
	case kindRoutes:
		p.Routes = slices.Delete(slices.Clone(p.Routes), i, i+1)
	case kindTimeouts:
		p.Timeouts = slices.Delete(slices.Clone(p.Timeouts), i, i+1)
	}
	return true
}

// setDegradation turns degradation id on or off; false when there is none.
func setDegradation(p *wire.Policy, id string, enabled bool) bool {
	i := ruleIndex(p, kindDegradations, id)
	if i < 0 {
		return false
	}
	p.Degradations = slices.Clone(p.Degradations)
	p.Degradations[i].Enabled = enabled
	return true
}

// Form values. A rule's form fields are named by their JSON path inside
// the rule ("match.route", "subsets[1].weight"), so a validation error's
// path names the field it belongs to.

// ruleValues encodes the rule of kind at index i as form values.
func ruleValues(p *wire.Policy, kind string, i int) url.Values {
	v := url.Values{}
	set := func(name, value string) {
		if value != "" {
			v.Set(name, value)
		}
	}
	meta := func(m wire.RuleMeta) {
		set("id", m.ID)
		set("description", m.Description)
		set("mode", string(m.Mode))
	}
	match := func(prefix string, m *wire.Match) {
		if m == nil {
			return
		}
		set(prefix+"route", m.Route)
		set(prefix+"method", m.Method)
		if m.Header != nil {
			set(prefix+"header.name", m.Header.Name)
			set(prefix+"header.value", m.Header.Value)
		}
	}
	response := func(prefix string, r *wire.Response) {
		if r == nil {
			return
		}
		if r.Status != 0 {
			set(prefix+"status", strconv.Itoa(r.Status))
		}
		set(prefix+"content_type", r.ContentType)
		set(prefix+"body", r.Body)
	}
	switch kind {
	case kindRateLimits:
		r := p.RateLimits[i]
		meta(r.RuleMeta)
		match("match.", &r.Match)
		set("rate", formatFloat(r.Rate))
		if r.Burst != 0 {
			set("burst", strconv.Itoa(r.Burst))
		}
		set("key", r.Key)
		set("scope", r.Scope)
		response("response.", r.Response)
	case kindBreakers:
		r := p.Breakers[i]
		meta(r.RuleMeta)
		set("target", r.Target)
		match("match.", r.Match)
		set("strategy", r.Strategy)
		set("threshold", formatFloat(r.Threshold))
		set("slow_call", formatWireDuration(r.SlowCall))
		if r.MinRequests != 0 {
			set("min_requests", strconv.Itoa(r.MinRequests))
		}
		set("window", formatWireDuration(r.Window))
		set("open_for", formatWireDuration(r.OpenFor))
		if r.HalfOpenProbes != 0 {
			set("half_open_probes", strconv.Itoa(r.HalfOpenProbes))
		}
		set("error_statuses", strings.Join(r.ErrorStatuses, ", "))
		response("fallback.", r.Fallback)
	case kindDegradations:
		r := p.Degradations[i]
		meta(r.RuleMeta)
		match("match.", &r.Match)
		if r.Enabled {
			v.Set("enabled", "on")
		}
		response("fallback.", &r.Fallback)
	case kindRoutes:
		r := p.Routes[i]
		meta(r.RuleMeta)
		set("target", r.Target)
		for j, s := range r.Subsets {
			pre := fmt.Sprintf("subsets[%d].", j)
			set(pre+"name", s.Name)
			set(pre+"version", s.Version)
			v.Set(pre+"weight", strconv.Itoa(s.Weight))
		}
		for j, o := range r.Overrides {
			pre := fmt.Sprintf("overrides[%d].", j)
			set(pre+"header.name", o.Header.Name)
			set(pre+"header.value", o.Header.Value)
			set(pre+"subset", o.Subset)
		}
	case kindTimeouts:
		r := p.Timeouts[i]
		meta(r.RuleMeta)
		set("target", r.Target)
		set("timeout", formatWireDuration(r.Timeout))
	}
	return v
}

func formatFloat(f float64) string {
	if f == 0 {
		return ""
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func formatWireDuration(d wire.Duration) string {
	if d == 0 {
		return ""
	}
	return d.D().String()
}

// formDecoder reads a rule from form values, collecting every value that
// does not parse as an error on its field.
type formDecoder struct {
	v    url.Values
	errs wire.FieldErrors
}

func (d *formDecoder) str(name string) string { return strings.TrimSpace(d.v.Get(name)) }

func (d *formDecoder) fail(name, msg string) {
	d.errs = append(d.errs, wire.FieldError{Field: name, Message: msg})
}

func (d *formDecoder) float(name string) float64 {
	s := d.str(name)
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		d.fail(name, "must be a number")
	}
	return f
}

func (d *formDecoder) int(name string) int {
	s := d.str(name)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		d.fail(name, "must be a whole number")
	}
	return n
}

func (d *formDecoder) duration(name string) wire.Duration {
	s := d.str(name)
	if s == "" {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.fail(name, "must be a duration like 500ms or 2s")
	}
	return wire.Duration(v)
}

func (d *formDecoder) meta() wire.RuleMeta {
	return wire.RuleMeta{ID: d.str("id"), Description: d.str("description"), Mode: wire.Mode(d.str("mode"))}
}

// anySet reports whether any of the named fields has a value.
func (d *formDecoder) anySet(names ...string) bool {
	for _, n := range names {
		if d.str(n) != "" {
			return true
		}
	}
	return false
}

func (d *formDecoder) header(prefix string) *wire.HeaderMatch {
	if !d.anySet(prefix+"name", prefix+"value") {
		return nil
	}
	return &wire.HeaderMatch{Name: d.str(prefix + "name"), Value: d.str(prefix + "value")}
}

func (d *formDecoder) match(prefix string) wire.Match {
	return wire.Match{Route: d.str(prefix + "route"), Method: strings.ToUpper(d.str(prefix + "method")), Header: d.header(prefix + "header.")}
}

func (d *formDecoder) optionalMatch(prefix string) *wire.Match {
	if !d.anySet(prefix+"route", prefix+"method", prefix+"header.name", prefix+"header.value") {
		return nil
	}
	m := d.match(prefix)
	return &m
}

func (d *formDecoder) response(prefix string) *wire.Response {
	if !d.anySet(prefix+"status", prefix+"content_type", prefix+"body") {
		return nil
	}
	// Browsers send textarea line breaks as CRLF.
	body := strings.ReplaceAll(d.v.Get(prefix+"body"), "\r\n", "\n")
	return &wire.Response{Status: d.int(prefix + "status"), ContentType: d.str(prefix + "content_type"), Body: body}
}

// rows counts the numbered rows ("subsets[3].name") present in the form.
func (d *formDecoder) rows(prefix string) int {
	n := 0
	for k := range d.v {
		rest, ok := strings.CutPrefix(k, prefix+"[")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, ']'), 0)])
		if err == nil && i >= 0 && i < wire.MaxRulesPerKind {
			n = max(n, i+1)
		}
	}
	return n
}

// decodeRule reads a rule of kind from form values. Numbered rows left
// blank are dropped and the rest renumbered; the returned values are the
// form as it should be shown again, matching the rule's indexes.
func decodeRule(kind string, v url.Values) (any, url.Values, wire.FieldErrors) {
	d := &formDecoder{v: v}
	switch kind {
	case kindRateLimits:
		r := wire.RateLimitRule{RuleMeta: d.meta(), Match: d.match("match."), Rate: d.float("rate"), Burst: d.int("burst"),
			Key: d.str("key"), Scope: d.str("scope"), Response: d.response("response.")}
		return r, v, d.errs
	case kindBreakers:
		r := wire.BreakerRule{RuleMeta: d.meta(), Target: d.str("target"), Match: d.optionalMatch("match."), Strategy: d.str("strategy"),
			Threshold: d.float("threshold"), SlowCall: d.duration("slow_call"), MinRequests: d.int("min_requests"), Window: d.duration("window"),
			OpenFor: d.duration("open_for"), HalfOpenProbes: d.int("half_open_probes"), Fallback: d.response("fallback.")}
		for s := range strings.FieldsFuncSeq(d.str("error_statuses"), func(r rune) bool { return r == ',' || r == ' ' }) {
			r.ErrorStatuses = append(r.ErrorStatuses, s)
		}
		return r, v, d.errs
	case kindDegradations:
		r := wire.DegradationRule{RuleMeta: d.meta(), Match: d.match("match."), Enabled: d.v.Get("enabled") != ""}
		if f := d.response("fallback."); f != nil {
			r.Fallback = *f
		}
		return r, v, d.errs
	case kindRoutes:
		return d.routingRule()
	case kindTimeouts:
		r := wire.TimeoutRule{RuleMeta: d.meta(), Target: d.str("target"), Timeout: d.duration("timeout")}
		return r, v, d.errs
	}
	return nil, v, wire.FieldErrors{{Field: "", Message: "unknown rule kind " + strconv.Quote(kind)}}
}

func (d *formDecoder) routingRule() (any, url.Values, wire.FieldErrors) {
	r := wire.RoutingRule{RuleMeta: d.meta(), Target: d.str("target")}
	shown := url.Values{}
	for _, k := range []string{"id", "description", "mode", "target"} {
		if s := d.v.Get(k); s != "" {
			shown.Set(k, s)
		}
	}
	for i := range d.rows("subsets") {
		from := fmt.Sprintf("subsets[%d].", i)
		if !d.anySet(from+"name", from+"version", from+"weight") {
			continue
		}
		to := fmt.Sprintf("subsets[%d].", len(r.Subsets))
		d.renumber(shown, from, to, "name", "version", "weight")
		r.Subsets = append(r.Subsets, wire.Subset{Name: d.str(from + "name"), Version: d.str(from + "version"), Weight: d.intAs(from+"weight", to+"weight")})
	}
	for i := range d.rows("overrides") {
		from := fmt.Sprintf("overrides[%d].", i)
		if !d.anySet(from+"header.name", from+"header.value", from+"subset") {
			continue
		}
		to := fmt.Sprintf("overrides[%d].", len(r.Overrides))
		d.renumber(shown, from, to, "header.name", "header.value", "subset")
		r.Overrides = append(r.Overrides, wire.HeaderRoute{Header: wire.HeaderMatch{Name: d.str(from + "header.name"), Value: d.str(from + "header.value")}, Subset: d.str(from + "subset")})
	}
	return r, shown, d.errs
}

// renumber copies a row's fields into shown under the row's new number.
func (d *formDecoder) renumber(shown url.Values, from, to string, fields ...string) {
	for _, f := range fields {
		if s := d.v.Get(from + f); s != "" {
			shown.Set(to+f, s)
		}
	}
}

// intAs parses the field name but reports a parse error under shownAs,
// the field's name after renumbering.
func (d *formDecoder) intAs(name, shownAs string) int {
	n := len(d.errs)
	v := d.int(name)
	for i := n; i < len(d.errs); i++ {
		d.errs[i].Field = shownAs
	}
	return v
}

// fieldErrors sorts validation errors of a whole policy: those under
// prefix (the edited rule, "degradations[2].") go to the form's fields,
// keyed by their path inside the rule; the rest are general.
func fieldErrors(errs wire.FieldErrors, prefix string, fields map[string]bool) (map[string]string, []string) {
	byField := map[string]string{}
	var general []string
	for _, e := range errs {
		key, ok := strings.CutPrefix(e.Field, prefix)
		if !ok {
			if e.Field == "" {
				general = append(general, e.Message)
			} else {
				general = append(general, e.Field+": "+e.Message)
			}
			continue
		}
		field := nearestField(key, fields)
		if field == "" {
			general = append(general, key+": "+e.Message)
			continue
		}
		if _, dup := byField[field]; !dup {
			byField[field] = e.Message
		}
	}
	return byField, general
}

// nearestField finds the form field an error path belongs to:
// "error_statuses[1]" belongs to "error_statuses", "fallback" to nothing.
func nearestField(key string, fields map[string]bool) string {
	for key != "" {
		if fields[key] {
			return key
		}
		cut := strings.LastIndexAny(key, ".[")
		if cut < 0 {
			return ""
		}
		key = key[:cut]
	}
	return ""
}
