package ui

import (
	"fmt"
	"net/url"
	"strings"
)

// formField is one input of a rule form. Name is the field's JSON path
// inside the rule, so validation errors land next to it.
type formField struct {
	Name        string
	Label       string
	Type        string // text, number, textarea, select, checkbox
	Value       string
	Placeholder string
	Hint        string
	Options     []option
	Error       string
	Wide        bool
}

// formSection groups fields under a legend: "Match", "Fallback",
// "Subset 2".
type formSection struct {
	Name   string // error key of the group, like "subsets"
	Legend string
	Hint   string
	Fields []formField
	Error  string
}

// ruleFormProps is the create or edit form of one rule.
type ruleFormProps struct {
	Service  string
	Kind     ruleKind
	OrigID   string // empty when creating
	Base     int64
	Reason   string
	Sections []formSection
	Errors   []string // not tied to a field
	Conflict string
	CSRF     string
}

func (p ruleFormProps) action() string {
	if p.OrigID == "" {
		return policyURL(p.Service) + "/" + url.PathEscape(p.Kind.Key)
	}
	return ruleURL(p.Service, p.Kind.Key, p.OrigID)
}

func (p ruleFormProps) title() string {
	if p.OrigID == "" {
		return "New " + strings.ToLower(p.Kind.Title)
	}
	return p.Kind.Title + " " + p.OrigID
}

func modeOptions() []option {
	return []option{{"", "enforce"}, {"shadow", "shadow (only count)"}}
}

func methodOptions() []option {
	return []option{{"", "any method"}, {"GET", "GET"}, {"POST", "POST"}, {"PUT", "PUT"}, {"PATCH", "PATCH"}, {"DELETE", "DELETE"}, {"HEAD", "HEAD"}, {"OPTIONS", "OPTIONS"}}
}

func textInput(name, label, placeholder string) formField {
	return formField{Name: name, Label: label, Type: "text", Placeholder: placeholder}
}

func metaSection(kind string) formSection {
	return formSection{Legend: "Rule", Fields: []formField{
		{Name: "id", Label: "ID", Type: "text", Placeholder: kindIDExample(kind), Hint: "letters, digits, '.', '_' or '-'"},
		{Name: "description", Label: "Description", Type: "text", Placeholder: "why this rule exists", Wide: true},
		{Name: "mode", Label: "Mode", Type: "select", Options: modeOptions(), Hint: "shadow only counts what the rule would do"},
	}}
}

func kindIDExample(kind string) string {
	switch kind {
	case kindRateLimits:
		return "orders-per-client"
	case kindBreakers:
		return "payments-breaker"
	case kindDegradations:
		return "reports-off"
	case kindRoutes:
		return "payments-canary"
	default:
		return "payments-timeout"
	}
}

func matchSection(legend, hint string) formSection {
	return formSection{Legend: legend, Hint: hint, Fields: []formField{
		textInput("match.route", "Route", "/orders/:id"),
		{Name: "match.method", Label: "Method", Type: "select", Options: methodOptions()},
		textInput("match.header.name", "Header", "X-Tenant"),
		textInput("match.header.value", "Header value", "acme"),
	}}
}

func responseSection(prefix, legend, hint string) formSection {
	return formSection{Legend: legend, Hint: hint, Fields: []formField{
		{Name: prefix + "status", Label: "Status", Type: "number", Placeholder: "503"},
		textInput(prefix+"content_type", "Content type", "application/json"),
		{Name: prefix + "body", Label: "Body", Type: "textarea", Placeholder: `{"error":"temporarily unavailable"}`, Wide: true},
	}}
}

// ruleSections lays out the form of a kind; numbered rows (subsets,
// overrides) get one blank row more than v holds.
func ruleSections(kind string, v url.Values) []formSection {
	switch kind {
	case kindRateLimits:
		return []formSection{metaSection(kind), matchSection("Match", "empty fields match every request"),
			{Legend: "Token bucket", Fields: []formField{
				{Name: "rate", Label: "Rate (requests/s)", Type: "text", Placeholder: "50"},
				{Name: "burst", Label: "Burst", Type: "number", Placeholder: "defaults to the rate"},
				textInput("key", "Key", "global, client_ip or header:X-Api-Key"),
				{Name: "scope", Label: "Scope", Type: "select", Options: []option{{"", "per instance"}, {"cluster", "cluster (shared by live instances)"}}},
			}},
			responseSection("response.", "Rejection", "empty: 429 with a JSON body and Retry-After"),
		}
	case kindBreakers:
		return []formSection{metaSection(kind),
			{Legend: "Protects", Hint: "an outbound target service, or an inbound route (match)", Fields: []formField{textInput("target", "Target service", "payments")}},
			matchSection("Inbound match", "leave empty for an outbound breaker"),
			{Legend: "Trip", Fields: []formField{
				{Name: "strategy", Label: "Strategy", Type: "select", Options: []option{{"", "error ratio"}, {"slow_call_ratio", "slow-call ratio"}, {"consecutive_errors", "consecutive errors"}}},
				textInput("threshold", "Threshold", "0.5 (ratio) or 5 (errors)"),
				textInput("slow_call", "Slow call over", "500ms"),
				{Name: "min_requests", Label: "Minimum requests", Type: "number", Placeholder: "20"},
				textInput("window", "Window", "10s"),
				textInput("open_for", "Open for", "30s"),
				{Name: "half_open_probes", Label: "Half-open probes", Type: "number", Placeholder: "3"},
				textInput("error_statuses", "Error statuses", "5xx, 429"),
			}},
			responseSection("fallback.", "Fallback while open", "empty: 503"),
		}
	case kindDegradations:
		return []formSection{metaSection(kind), matchSection("Route", "the route template the switch turns off"),
			{Legend: "Switch", Fields: []formField{{Name: "enabled", Label: "Enabled (answer the fallback now)", Type: "checkbox"}}},
			responseSection("fallback.", "Fallback", "what the route answers while degraded"),
		}
	case kindRoutes:
		out := []formSection{metaSection(kind), {Legend: "Target", Fields: []formField{textInput("target", "Target service", "payments")}}}
		subsets := max(rowCount(v, "subsets")+1, 2)
		for i := range subsets {
			pre := fmt.Sprintf("subsets[%d].", i)
			sec := formSection{Name: fmt.Sprintf("subsets[%d]", i), Legend: fmt.Sprintf("Subset %d", i+1), Fields: []formField{
				textInput(pre+"name", "Name", "stable"),
				textInput(pre+"version", "Version", "v1.4.2 (empty: every instance)"),
				{Name: pre + "weight", Label: "Weight", Type: "number", Placeholder: "90"},
			}}
			if i == 0 {
				sec.Name, sec.Hint = "subsets", "blank rows are ignored; save to get another row"
			}
			out = append(out, sec)
		}
		overrides := max(rowCount(v, "overrides")+1, 1)
		for i := range overrides {
			pre := fmt.Sprintf("overrides[%d].", i)
			out = append(out, formSection{Name: fmt.Sprintf("overrides[%d]", i), Legend: fmt.Sprintf("Header override %d", i+1), Hint: "requests with this header go to one subset", Fields: []formField{
				textInput(pre+"header.name", "Header", "X-Canary"),
				textInput(pre+"header.value", "Value", "1"),
				textInput(pre+"subset", "Subset", "canary"),
			}})
		}
		return out
	case kindTimeouts:
		return []formSection{metaSection(kind), {Legend: "Outbound calls", Fields: []formField{
			textInput("target", "Target service", "payments"),
			textInput("timeout", "Timeout", "2s"),
		}}}
	}
	return nil
}

func rowCount(v url.Values, prefix string) int {
	d := formDecoder{v: v}
	return d.rows(prefix)
}

// fillSections puts values and errors into the form's fields.
func fillSections(secs []formSection, v url.Values, errs map[string]string) {
	for i := range secs {
		s := &secs[i]
		if s.Name != "" {
			s.Error = errs[s.Name]
		}
		for j := range s.Fields {
			f := &s.Fields[j]
			f.Value = v.Get(f.Name)
			f.Error = errs[f.Name]
		}
	}
}

// sectionNames is every field and group name of a form.
func sectionNames(secs []formSection) map[string]bool {
	names := map[string]bool{}
	for _, s := range secs {
		if s.Name != "" {
			names[s.Name] = true
		}
		for _, f := range s.Fields {
			names[f.Name] = true
		}
	}
	return names
}

func fieldID(name string) string {
	r := strings.NewReplacer(".", "-", "[", "-", "]", "")
	return "f-" + r.Replace(name)
}
