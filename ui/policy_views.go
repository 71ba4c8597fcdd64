package ui

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// convergence says how far a policy version has spread over the live
// instances of a service.
type convergence struct {
	Version   int64
	Live      int
	OnVersion int
	Rejected  []PolicyInstance // live instances that refused Version
	Text      string
	State     string // none, ok, pending, rejected
}

func newConvergence(version int64, instances []PolicyInstance) convergence {
	c := convergence{Version: version}
	for _, in := range instances {
		if in.Health == Down {
			continue
		}
		c.Live++
		if in.AppliedVersion == version {
			c.OnVersion++
		}
		if in.Error != "" && in.RejectedVersion == version {
			c.Rejected = append(c.Rejected, in)
		}
	}
	v := "v" + strconv.FormatInt(version, 10)
	var parts []string
	switch {
	case version == 0:
		c.State = "none"
		parts = append(parts, "no policy stored")
	case c.Live == 0:
		c.State = "none"
		parts = append(parts, "no live instances")
	default:
		parts = append(parts, strconv.Itoa(c.OnVersion)+"/"+strconv.Itoa(c.Live)+" instances on "+v)
		c.State = "ok"
		if c.OnVersion < c.Live {
			c.State = "pending"
		}
	}
	if len(c.Rejected) > 0 {
		c.State = "rejected"
		parts = append(parts, strconv.Itoa(len(c.Rejected))+" rejected "+v+": "+c.Rejected[0].Error)
	}
	c.Text = strings.Join(parts, "; ")
	return c
}

// instanceStatus is one row of the convergence table.
func instanceStatus(version int64, in PolicyInstance) (text, class string) {
	switch {
	case in.Error != "" && in.RejectedVersion >= version:
		return "rejected v" + strconv.FormatInt(in.RejectedVersion, 10) + ": " + in.Error, "conv-rejected"
	case in.Health == Down:
		return "down", "conv-pending"
	case in.AppliedVersion == version:
		return "current", "conv-ok"
	default:
		return "behind (applying v" + strconv.FormatInt(version, 10) + ")", "conv-pending"
	}
}

// policiesRow is one service on the policies page.
type policiesRow struct {
	Service string
	Version int64
	Counts  []kindCount
	Rules   int
	Conv    convergence
}

type kindCount struct {
	Kind  ruleKind
	Count int
}

func newPoliciesRow(s PolicySummary) policiesRow {
	row := policiesRow{Service: s.Service, Version: s.Policy.Version, Rules: ruleCount(&s.Policy), Conv: newConvergence(s.Policy.Version, s.Instances)}
	for _, k := range ruleKinds() {
		if n := len(ruleMetas(&s.Policy, k.Key)); n > 0 {
			row.Counts = append(row.Counts, kindCount{k, n})
		}
	}
	return row
}

// ruleRow is one rule in the policy tab's tables.
type ruleRow struct {
	Kind        string
	ID          string
	Description string
	Shadow      bool
	Match       string
	Settings    string
	Counters    []RuleCount
	Degradation bool
	Enabled     bool
}

type kindTable struct {
	Kind  ruleKind
	Rules []ruleRow
}

func ruleTables(p *wire.Policy, counters []RuleCount) []kindTable {
	byRule := map[string][]RuleCount{}
	for _, c := range counters {
		if c.Count > 0 {
			byRule[c.RuleID] = append(byRule[c.RuleID], c)
		}
	}
	var out []kindTable
	for _, k := range ruleKinds() {
		t := kindTable{Kind: k}
		for i, m := range ruleMetas(p, k.Key) {
			row := ruleRow{Kind: k.Key, ID: m.ID, Description: m.Description, Shadow: m.Mode == wire.Shadow, Counters: byRule[m.ID]}
			row.Match, row.Settings = ruleSummary(p, k.Key, i)
			if k.Key == kindDegradations {
				row.Degradation, row.Enabled = true, p.Degradations[i].Enabled
			}
			t.Rules = append(t.Rules, row)
		}
		out = append(out, t)
	}
	return out
}

func matchText(m *wire.Match) string {
	if m == nil {
		return ""
	}
	var parts []string
	if m.Method != "" {
		parts = append(parts, m.Method)
	}
	if m.Route != "" {
		parts = append(parts, m.Route)
	}
	if len(parts) == 0 {
		parts = append(parts, "every route")
	}
	if m.Header != nil {
		parts = append(parts, "when "+m.Header.Name+": "+m.Header.Value)
	}
	return strings.Join(parts, " ")
}

func responseText(r *wire.Response, def string) string {
	if r == nil {
		return def
	}
	s := strconv.Itoa(r.Status)
	if r.Status == 0 {
		s = def
	}
	if r.ContentType != "" {
		s += " " + r.ContentType
	}
	return s
}

// ruleSummary describes what a rule applies to and what it does.
func ruleSummary(p *wire.Policy, kind string, i int) (match, settings string) {
	switch kind {
	case kindRateLimits:
		r := p.RateLimits[i]
		s := formatFloat(r.Rate) + "/s"
		if r.Burst > 0 {
			s += ", burst " + strconv.Itoa(r.Burst)
		}
		s += ", key " + cmpOr(r.Key, wire.KeyGlobal)
		if r.Scope == wire.ScopeCluster {
			s += ", shared by the cluster"
		}
		return matchText(&r.Match), s + "; rejects with " + responseText(r.Response, "429")
	case kindBreakers:
		r := p.Breakers[i]
		m := matchText(r.Match)
		if r.Target != "" {
			m = "calls to " + r.Target
		}
		var s string
		switch r.Strategy {
		case wire.StrategyConsecutiveErrors:
			s = formatFloat(r.Threshold) + " consecutive errors"
		case wire.StrategySlowCallRatio:
			s = "slow calls (over " + formatWireDuration(r.SlowCall) + ") ≥ " + formatPercent(r.Threshold)
		default:
			s = "errors ≥ " + formatPercent(r.Threshold)
		}
		if r.Window > 0 {
			s += " in " + formatWireDuration(r.Window)
		}
		if r.OpenFor > 0 {
			s += ", open " + formatWireDuration(r.OpenFor)
		}
		return m, s + "; fallback " + responseText(r.Fallback, "503")
	case kindDegradations:
		r := p.Degradations[i]
		return matchText(&r.Match), "answers " + responseText(&r.Fallback, "")
	case kindRoutes:
		r := p.Routes[i]
		total := 0
		for _, s := range r.Subsets {
			total += s.Weight
		}
		var parts []string
		for _, s := range r.Subsets {
			t := s.Name
			if s.Version != "" {
				t += " (" + s.Version + ")"
			}
			if total > 0 {
				t += " " + formatPercent(float64(s.Weight)/float64(total))
			}
			parts = append(parts, t)
		}
		s := strings.Join(parts, " · ")
		for _, o := range r.Overrides {
			s += "; " + o.Header.Name + ": " + o.Header.Value + " → " + o.Subset
		}
		return "calls to " + r.Target, s
	case kindTimeouts:
		r := p.Timeouts[i]
		return "calls to " + r.Target, formatWireDuration(r.Timeout)
	}
	return "", ""
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// diffLine is one shown line of a stored diff.
type diffLine struct {
	Class string // diff-add, diff-del, diff-ctx, diff-gap
	Text  string
}

// Diff display limits: context lines around each change, and lines per
// version.
const (
	diffContext  = 2
	maxDiffShown = 400
)

// diffLines keeps the changed lines of a diff and diffContext lines around
// each, with a gap marker where lines were left out.
func diffLines(diff string) []diffLine {
	lines := strings.Split(strings.TrimSuffix(diff, "\n"), "\n")
	keep := make([]bool, len(lines))
	for i, l := range lines {
		if strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-") {
			for j := max(0, i-diffContext); j <= min(len(lines)-1, i+diffContext); j++ {
				keep[j] = true
			}
		}
	}
	var out []diffLine
	gap := false
	for i, l := range lines {
		if !keep[i] {
			gap = true
			continue
		}
		if len(out) >= maxDiffShown {
			out = append(out, diffLine{"diff-gap", "… " + strconv.Itoa(len(lines)-i) + " more lines"})
			break
		}
		if gap && len(out) > 0 {
			out = append(out, diffLine{"diff-gap", "…"})
		}
		gap = false
		class := "diff-ctx"
		switch {
		case strings.HasPrefix(l, "+"):
			class = "diff-add"
		case strings.HasPrefix(l, "-"):
			class = "diff-del"
		}
		out = append(out, diffLine{class, l})
	}
	return out
}

// sparkMarker is a vertical line on a chart at a policy change.
type sparkMarker struct {
	X     string
	Title string
}

// policyMarkers places changes on a chart of series, titled with the
// version and reason. Changes outside the series are left out.
func policyMarkers(series []Point, changes []PolicyChange) []sparkMarker {
	if len(series) < 2 {
		return nil
	}
	first, last := series[0].Time, series[len(series)-1].Time
	span := last.Sub(first)
	if span <= 0 {
		return nil
	}
	bucket := span / time.Duration(len(series)-1)
	var out []sparkMarker
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if c.Time.Before(first) || c.Time.After(last.Add(bucket)) {
			continue
		}
		x := min(float64(c.Time.Sub(first))/float64(span), 1) * sparkWidth
		title := "v" + strconv.FormatInt(c.Version, 10) + " by " + c.Actor
		if c.Reason != "" {
			title += ": " + c.Reason
		}
		out = append(out, sparkMarker{X: px(x), Title: title})
	}
	return out
}

// Policy links.

func policyURL(service string) string { return serviceURL(service) + "/policy" }

func ruleURL(service, kind, id string) string {
	return policyURL(service) + "/" + url.PathEscape(kind) + "/" + url.PathEscape(id)
}

func newRuleURL(service, kind string) string {
	return policyURL(service) + "/new/" + url.PathEscape(kind)
}

// htmxConfig lets htmx swap the answers to policy forms that explain
// themselves in the page: 409 (conflict) and 422 (invalid input).
const htmxConfig = `{"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"^(409|422)$","swap":true,"error":false},{"code":"[45]..","swap":false,"error":true}]}`

// csrfHeaders is the hx-headers value that makes htmx send the CSRF
// token: JSON-encoded here, HTML-escaped by templ.
func csrfHeaders(token string) string {
	b, _ := json.Marshal(map[string]string{"X-CSRF-Token": token})
	return string(b)
}

func withMarkers(s sparkline, m []sparkMarker) sparkline {
	s.Markers = m
	return s
}
