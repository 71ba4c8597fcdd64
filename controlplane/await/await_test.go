package await

import (
	"testing"
	"time"
)

func TestUntilReturnsOnceTrue(t *testing.T) {
	calls := 0
	took := Until(t, 5*time.Second, "third call", func() (bool, string) {
		calls++
		return calls == 3, "not yet"
	})
	if calls != 3 {
		t.Errorf("calls: got %d, want 3", calls)
	}
	if took < 2*Interval {
		t.Errorf("took: got %s, want at least two intervals", took)
	}
}

// failRecorder records Fatalf instead of stopping the test.
type failRecorder struct {
	testing.TB
	failed string
}

func (f *failRecorder) Helper() {}
func (f *failRecorder) Fatalf(format string, args ...any) {
	f.failed = format
	panic(f)
}

func TestUntilFailsAfterWithin(t *testing.T) {
	rec := &failRecorder{TB: t}
	defer func() {
		if p := recover(); p != rec {
			t.Fatalf("recover: got %v, want the recorder's Fatalf", p)
		}
		if rec.failed == "" {
			t.Errorf("Fatalf: not called, want a failure")
		}
	}()
	Until(rec, 0, "never", func() (bool, string) { return false, "still false" })
	t.Errorf("Until returned, want Fatalf")
}
