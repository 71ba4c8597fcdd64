package store

import (
	"fmt"
	"strings"
)

// MaxAttributeMatches bounds the attribute terms of one trace search:
// each is a scan of span attributes.
const MaxAttributeMatches = 4

// maxAttributeKey bounds an attribute key in a search.
const maxAttributeKey = 128

// ParseAttributeMatch reads "key=value" (the value may be empty or hold
// further '=' signs). The key is what OpenTelemetry attribute names are
// made of: letters, digits and . _ - : / @. The error wraps ErrInvalid.
func ParseAttributeMatch(s string) (AttributeMatch, error) {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return AttributeMatch{}, fmt.Errorf("%w: attribute: %q is not key=value", ErrInvalid, s)
	}
	m := AttributeMatch{Key: k, Value: v}
	return m, m.check()
}

func (m AttributeMatch) check() error {
	if m.Key == "" || len(m.Key) > maxAttributeKey {
		return fmt.Errorf("%w: attribute: a key of 1 to %d characters, got %d", ErrInvalid, maxAttributeKey, len(m.Key))
	}
	for _, r := range m.Key {
		if !attributeKeyRune(r) {
			return fmt.Errorf("%w: attribute: key %q: %q is not a letter, digit or one of . _ - : / @", ErrInvalid, m.Key, r)
		}
	}
	return nil
}

func attributeKeyRune(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("._-:/@", r)
}

// addTraceAttributeMatches adds one condition per match: some span of
// the trace has the attribute with that value.
func addTraceAttributeMatches(c *conds, ms []AttributeMatch) error {
	return addAttributeMatches(c, ms, func(match string) string {
		return `EXISTS (SELECT 1 FROM spans s WHERE s.trace_key = traces.id AND ` + match + `)`
	}, "s.attrs")
}

// addLogAttributeMatches adds one condition per match: the log record
// has the attribute with that value.
func addLogAttributeMatches(c *conds, ms []AttributeMatch) error {
	return addAttributeMatches(c, ms, func(match string) string { return match }, "attrs")
}

// addAttributeMatches adds one condition per match, wrap(the test of the
// JSON column attrs). The key is checked above, so it is safe inside the
// quoted JSON path; values are bound parameters. Booleans are stored as
// JSON true/false and compared as those words.
//
// Before parsing a row's JSON, a substring test skips the rows whose
// attribute text cannot hold the match: the key as a JSON object key
// (keys need no escaping), and the value too when it is made of
// characters JSON writes as they are. Parsing is most of a search's cost.
func addAttributeMatches(c *conds, ms []AttributeMatch, wrap func(match string) string, attrs string) error {
	if len(ms) > MaxAttributeMatches {
		return fmt.Errorf("%w: attribute: at most %d terms, got %d", ErrInvalid, MaxAttributeMatches, len(ms))
	}
	for _, m := range ms {
		if err := m.check(); err != nil {
			return err
		}
		path := `$."` + m.Key + `"`
		match, args := attrs+` IS NOT NULL AND instr(`+attrs+`, ?) > 0`, []any{`"` + m.Key + `":`}
		if m.Value != "" && !strings.ContainsFunc(m.Value, jsonEscaped) {
			match += ` AND instr(` + attrs + `, ?) > 0`
			args = append(args, m.Value)
		}
		match += ` AND (CASE json_type(` + attrs + `, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
			ELSE CAST(json_extract(` + attrs + `, ?) AS TEXT) END) = ?`
		c.add(wrap(match), append(args, path, path, m.Value)...)
	}
	return nil
}

// jsonEscaped reports whether JSON text may write r other than as itself
// (the store's encoder escapes quotes, backslashes, control and HTML
// characters and, for invalid UTF-8, replaces bytes): a value holding one
// cannot be looked for as a substring.
func jsonEscaped(r rune) bool {
	return r < 0x20 || r >= 0x7f || strings.ContainsRune(`"\<>&`, r)
}
