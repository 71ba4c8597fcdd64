package agent

import (
	"testing"
	"time"
)

func TestAppendRFC3339Nano(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		t    time.Time
	}{
		{name: "utc whole second", t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{name: "utc nanos", t: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)},
		{name: "trailing zeros", t: time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC)},
		{name: "one nano", t: time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC)},
		{name: "same second other zone", t: time.Date(2026, 1, 2, 4, 4, 5, 5, berlin)},
		{name: "next second", t: time.Date(2026, 1, 2, 3, 4, 6, 500, time.UTC)},
	}
	var c timeCache
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(c.appendRFC3339Nano(nil, tt.t))
			if want := tt.t.Format(time.RFC3339Nano); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}
