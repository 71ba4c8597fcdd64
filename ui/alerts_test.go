package ui

import (
	"context"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
)

func TestOverviewAlerts(t *testing.T) {
	tests := []struct {
		name   string
		alerts func(context.Context) []string
		want   []string
	}{
		{name: "no option"},
		{name: "nothing wrong", alerts: func(context.Context) []string { return nil }},
		{
			name:   "store failing",
			alerts: func(context.Context) []string { return []string{"The store is failing writes: disk full"} },
			want:   []string{"The store is failing writes: disk full"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(newFakeSource(), WithAlerts(tt.alerts))
			res := get(t, h, "/")
			if res.code != 200 {
				t.Fatalf("status: got %d, want 200", res.code)
			}
			var got []string
			res.doc.Find(testid("alert")).Each(func(_ int, s *goquery.Selection) {
				got = append(got, strings.TrimSpace(s.Text()))
			})
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("alerts: got %q, want %q", got, tt.want)
			}
		})
	}
}
