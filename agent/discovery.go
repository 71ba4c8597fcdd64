package agent

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/pilothouse/pilothouse/agent/internal/routing"
	"github.com/pilothouse/pilothouse/agent/wire"
)

// discovery knows the live instances of other services, from the control
// plane's heartbeat replies, so that http://orders/... can reach a live
// orders instance.
type discovery struct {
	table atomic.Pointer[endpointTable]
	// rr keeps each service's round-robin position across updates.
	rr sync.Map // service -> *routing.RoundRobin
}

// endpointTable is one immutable snapshot.
type endpointTable struct {
	byService map[string][]routing.Instance
	// byAddress names the service an instance address belongs to, so that
	// rules for a target also apply to calls made to its address.
	byAddress map[string]string
}

// update replaces the snapshot; nil or empty endpoints keep the previous
// one (a control plane that sends none knows nothing new).
func (d *discovery) update(eps map[string][]wire.Endpoint) {
	if len(eps) == 0 {
		return
	}
	t := &endpointTable{byService: make(map[string][]routing.Instance, len(eps)), byAddress: map[string]string{}}
	for svc, list := range eps {
		ins := make([]routing.Instance, 0, len(list))
		for _, e := range list {
			if e.Address == "" {
				continue
			}
			ins = append(ins, routing.Instance{Address: e.Address, Version: e.Version})
			t.byAddress[e.Address] = svc
		}
		if len(ins) > 0 {
			t.byService[svc] = ins
		}
	}
	d.table.Store(t)
}

// resolve names the target service of a request to host (host:port or
// host): the host itself when it is a known service, the service an
// instance address belongs to, else the host without port. instances is
// non-nil only when host names a known service, which calls for picking
// an instance.
func (d *discovery) resolve(hostport string) (target string, instances []routing.Instance) {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	t := d.table.Load()
	if t == nil {
		return host, nil
	}
	if ins, ok := t.byService[host]; ok {
		return host, ins
	}
	if svc, ok := t.byAddress[hostport]; ok {
		return svc, nil
	}
	return host, nil
}

func (d *discovery) roundRobin(service string) *routing.RoundRobin {
	if rr, ok := d.rr.Load(service); ok {
		return rr.(*routing.RoundRobin)
	}
	rr, _ := d.rr.LoadOrStore(service, &routing.RoundRobin{})
	return rr.(*routing.RoundRobin)
}
