package dashboard

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type fakeWriteHealth struct {
	since time.Time
	err   error
}

func (f fakeWriteHealth) WriteFailure() (time.Time, error) { return f.since, f.err }

func TestStoreAlerts(t *testing.T) {
	since := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		st   fakeWriteHealth
		want []string // substrings of the one alert; nil means no alert
	}{
		{name: "healthy"},
		{name: "failing", st: fakeWriteHealth{since: since, err: errors.New("store: write: disk full")},
			want: []string{"failing writes", "2026-03-01 12:00:00 UTC", "disk full", "503"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StoreAlerts(tt.st)(context.Background())
			if tt.want == nil {
				if len(got) != 0 {
					t.Fatalf("alerts: got %q, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("alerts: got %d, want 1", len(got))
			}
			for _, w := range tt.want {
				if !strings.Contains(got[0], w) {
					t.Errorf("alert %q: want it to contain %q", got[0], w)
				}
			}
		})
	}
}
