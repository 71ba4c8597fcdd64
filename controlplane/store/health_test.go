package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

var errDiskFull = errors.New("disk full")

func TestWriteFault(t *testing.T) {
	var failing atomic.Bool
	now := t0
	s := openTestStore(t, t.TempDir(), Options{
		Now: func() time.Time { return now },
		WriteFault: func() error {
			if failing.Load() {
				return errDiskFull
			}
			return nil
		},
	})
	ctx := context.Background()
	steps := []struct {
		name        string
		failing     bool
		at          time.Time
		wantErr     bool
		wantSince   time.Time
		wantErrors  int64
		wantStoredN int64
	}{
		{name: "healthy", at: t0, wantStoredN: 7},
		{name: "first failure", failing: true, at: t0.Add(time.Minute), wantErr: true, wantSince: t0.Add(time.Minute), wantErrors: 1, wantStoredN: 7},
		{name: "still failing keeps since", failing: true, at: t0.Add(2 * time.Minute), wantErr: true, wantSince: t0.Add(time.Minute), wantErrors: 2, wantStoredN: 7},
		{name: "recovered", at: t0.Add(3 * time.Minute), wantErrors: 2, wantStoredN: 14},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			failing.Store(st.failing)
			now = st.at
			err := s.WriteSpans(ctx, shopTrace(i, t0, "req", 200))
			if got := errors.Is(err, errDiskFull); got != st.wantErr {
				t.Fatalf("WriteSpans error %v: got disk full %v, want %v", err, got, st.wantErr)
			}
			since, ferr := s.WriteFailure()
			if got := ferr != nil; got != st.wantErr {
				t.Errorf("WriteFailure error %v: got failing %v, want %v", ferr, got, st.wantErr)
			}
			if !since.Equal(st.wantSince) {
				t.Errorf("WriteFailure since: got %v, want %v", since, st.wantSince)
			}
			stats := s.Stats()
			if stats.WriteErrors != st.wantErrors {
				t.Errorf("WriteErrors: got %d, want %d", stats.WriteErrors, st.wantErrors)
			}
			if stats.Spans != st.wantStoredN {
				t.Errorf("Spans: got %d, want %d", stats.Spans, st.wantStoredN)
			}
		})
	}
}
