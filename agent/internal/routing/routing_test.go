package routing

import (
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
)

func TestWeightedSplitIsStatisticallyRight(t *testing.T) {
	tab := New([]Subset{{Name: "stable", Version: "v1", Weight: 90}, {Name: "canary", Version: "v2", Weight: 10}}, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 100000
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		counts[tab.Subset(tab.PickSubset(http.Header{}, rng.Float64()))]++
	}
	// Binomial(n, 0.1): standard deviation ~95; allow 5 sigma.
	want := 0.10 * n
	sigma := math.Sqrt(n * 0.1 * 0.9)
	if got := float64(counts["canary"]); math.Abs(got-want) > 5*sigma {
		t.Errorf("canary share: got %v of %d, want %v ± %v", got, n, want, 5*sigma)
	}
}

func TestPickSubset(t *testing.T) {
	tab := New([]Subset{{Name: "a", Weight: 1}, {Name: "b", Weight: 3}, {Name: "dark", Weight: 0}},
		[]Override{{Header: "X-Canary", Value: "1", Subset: "dark"}})
	tests := []struct {
		name   string
		header http.Header
		r      float64
		want   string
	}{
		{name: "low r", header: http.Header{}, r: 0, want: "a"},
		{name: "boundary", header: http.Header{}, r: 0.25, want: "b"},
		{name: "high r", header: http.Header{}, r: 0.999, want: "b"},
		{name: "override wins", header: http.Header{"X-Canary": {"1"}}, r: 0, want: "dark"},
		{name: "override value must match", header: http.Header{"X-Canary": {"0"}}, r: 0, want: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tab.Subset(tab.PickSubset(tt.header, tt.r)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPickInstanceRoundRobinsWithinSubset(t *testing.T) {
	tab := New([]Subset{{Name: "stable", Version: "v1", Weight: 1}, {Name: "canary", Version: "v2", Weight: 1}}, nil)
	instances := []Instance{{"a:1", "v1"}, {"b:1", "v2"}, {"c:1", "v1"}}
	var got []string
	for i := 0; i < 4; i++ {
		in, ok := tab.PickInstance(0, instances)
		if !ok {
			t.Fatal("no instance")
		}
		got = append(got, in.Address)
	}
	if want := []string{"a:1", "c:1", "a:1", "c:1"}; !equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, ok := tab.PickInstance(1, []Instance{{"a:1", "v1"}}); ok {
		t.Error("picked an instance of the wrong version")
	}
	var rr RoundRobin
	if _, ok := rr.Pick(nil); ok {
		t.Error("picked from no instances")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func BenchmarkPick(b *testing.B) {
	tab := New([]Subset{{Name: "stable", Version: "v1", Weight: 90}, {Name: "canary", Version: "v2", Weight: 10}}, nil)
	instances := []Instance{{"a:1", "v1"}, {"b:1", "v2"}, {"c:1", "v1"}}
	h := http.Header{}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tab.PickInstance(tab.PickSubset(h, float64(i%100)/100), instances)
	}
}
