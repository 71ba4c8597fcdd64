package dashboard

import (
	"cmp"
	"slices"

	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/ui"
)

// MaxMapServices caps the services the service map draws: the store
// keeps whatever service names agents send, and a flood of distinct names
// must not turn the map into thousands of nodes. The busiest services
// are kept; the others are drawn as one OtherService node.
const MaxMapServices = 50

// OtherService names the node the services past MaxMapServices fold into.
const OtherService = "other"

// foldEdges maps store edges to the map's, keeping the max busiest
// services (by requests in and out) and folding the rest into
// OtherService, edges merged.
func foldEdges(es []store.Edge, max int) []ui.Edge {
	traffic := map[string]int64{}
	for _, e := range es {
		traffic[e.Caller] += e.Requests
		traffic[e.Callee] += e.Requests
	}
	keep := func(string) bool { return true }
	if len(traffic) > max {
		names := make([]string, 0, len(traffic))
		for n := range traffic {
			names = append(names, n)
		}
		slices.SortFunc(names, func(a, b string) int {
			return cmp.Or(cmp.Compare(traffic[b], traffic[a]), cmp.Compare(a, b))
		})
		kept := make(map[string]bool, max)
		for _, n := range names[:max] {
			kept[n] = true
		}
		keep = func(n string) bool { return kept[n] }
	}
	type pair struct{ caller, callee string }
	merged := map[pair]int{}
	var out []ui.Edge
	for _, e := range es {
		p := pair{e.Caller, e.Callee}
		if !keep(p.caller) {
			p.caller = OtherService
		}
		if !keep(p.callee) {
			p.callee = OtherService
		}
		if i, ok := merged[p]; ok {
			out[i].Requests += e.Requests
			out[i].Errors += e.Errors
			if e.First.Before(out[i].First) {
				out[i].First = e.First
			}
			continue
		}
		merged[p] = len(out)
		out = append(out, ui.Edge{Caller: p.caller, Callee: p.callee, Requests: e.Requests, Errors: e.Errors, First: e.First})
	}
	return out
}
