package dashboard

import (
	"fmt"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

func TestFoldEdges(t *testing.T) {
	first := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	shop := []store.Edge{
		{Caller: "gateway", Callee: "orders", Requests: 100, Errors: 1},
		{Caller: "orders", Callee: "payments", Requests: 50},
	}
	var flood []store.Edge
	for i := range 1000 {
		flood = append(flood, store.Edge{Caller: fmt.Sprintf("svc-%d", i), Callee: "orders", Requests: 1, Errors: 1,
			First: first.Add(time.Duration(1000-i) * time.Second)})
	}
	tests := []struct {
		name      string
		edges     []store.Edge
		max       int
		wantEdges int
		wantNodes int
		wantOther int64 // requests on edges touching OtherService
	}{
		{name: "under the cap", edges: shop, max: 3, wantEdges: 2, wantNodes: 3},
		{name: "flood folds", edges: append(append([]store.Edge{}, shop...), flood...), max: 5, wantEdges: 2 + 3, wantNodes: 6, wantOther: 998},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := foldEdges(tt.edges, tt.max)
			nodes := map[string]bool{}
			var other, total, want int64
			for _, e := range got {
				nodes[e.Caller], nodes[e.Callee] = true, true
				total += e.Requests
				if e.Caller == OtherService || e.Callee == OtherService {
					other += e.Requests
					// The folded edge's earliest call is its earliest
					// member's: svc-999's, a second after first.
					if want := first.Add(time.Second); !e.First.Equal(want) {
						t.Errorf("folded edge's first call: got %v, want %v", e.First, want)
					}
				}
			}
			for _, e := range tt.edges {
				want += e.Requests
			}
			if len(got) != tt.wantEdges || len(nodes) != tt.wantNodes {
				t.Errorf("got %d edges over %d nodes, want %d over %d: %+v", len(got), len(nodes), tt.wantEdges, tt.wantNodes, got)
			}
			if other != tt.wantOther || total != want {
				t.Errorf("requests: got %d folded of %d, want %d of %d", other, total, tt.wantOther, want)
			}
		})
	}
}
