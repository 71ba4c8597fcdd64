package policy

import (
	"encoding/json"
	"strings"
)

// maxDiffLines bounds the quadratic line diff; larger documents are
// reported as replaced wholesale.
const maxDiffLines = 3000

// Diff returns a line diff of two policies' indented JSON: lines removed
// start with "-", added with "+", kept with " ".
func Diff(before, after any) string {
	a, b := prettyLines(before), prettyLines(after)
	if len(a)*len(b) > maxDiffLines*maxDiffLines/4 {
		return "- (previous version, too large to diff)\n+ (new version)\n"
	}
	// Longest common subsequence table, from the ends.
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			sb.WriteString(" " + a[i] + "\n")
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			sb.WriteString("-" + a[i] + "\n")
			i++
		default:
			sb.WriteString("+" + b[j] + "\n")
			j++
		}
	}
	return sb.String()
}

func prettyLines(v any) []string {
	if v == nil {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return []string{err.Error()}
	}
	return strings.Split(string(b), "\n")
}
