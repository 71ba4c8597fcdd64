package consul

import (
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/registry"
)

// fakeCatalog is a CatalogSource over a fixed map.
type fakeCatalog map[string][]CatalogInstance

func (f fakeCatalog) Services() []string {
	out := make([]string, 0, len(f))
	for name := range f {
		out = append(out, name)
	}
	return out
}

func (f fakeCatalog) Instances(service string) []CatalogInstance { return f[service] }

// fakeBeats is a HeartbeatSource over fixed services.
type fakeBeats []registry.Service

func (f fakeBeats) Services(time.Time) []registry.Service { return f }

func (f fakeBeats) Service(name string, _ time.Time) (registry.Service, bool) {
	for _, s := range f {
		if s.Name == name {
			return s, true
		}
	}
	return registry.Service{}, false
}

func TestInstanceView(t *testing.T) {
	now := time.Unix(1764000000, 0)
	beats := fakeBeats{
		{Name: "orders", Health: registry.Healthy, RequestsPerSec: 3,
			Instances: []registry.Instance{{ID: "o1", Service: "orders", Health: registry.Healthy}, {ID: "o2", Service: "orders", Health: registry.Healthy}}},
		{Name: "payments", Health: registry.Healthy, Instances: []registry.Instance{{ID: "p1", Service: "payments", Health: registry.Healthy}}},
	}
	catalog := fakeCatalog{
		"orders":    {{ID: "o2", Service: "orders", Status: api.HealthCritical}},
		"inventory": {{ID: "i1", Service: "inventory", Address: "10.0.0.9", Port: 8083, Status: api.HealthPassing}},
		"empty":     nil,
	}
	view := InstanceView{Heartbeats: beats, Catalog: catalog}

	tests := []struct {
		name      string
		service   string
		wantOK    bool
		wantIDs   []string
		wantState []registry.Health
		wantSvc   registry.Health
	}{
		{name: "consul critical marks a heartbeat instance down", service: "orders", wantOK: true,
			wantIDs: []string{"o1", "o2"}, wantState: []registry.Health{registry.Healthy, registry.Down}, wantSvc: registry.Degraded},
		{name: "heartbeats only is unchanged", service: "payments", wantOK: true,
			wantIDs: []string{"p1"}, wantState: []registry.Health{registry.Healthy}, wantSvc: registry.Healthy},
		{name: "consul only service", service: "inventory", wantOK: true,
			wantIDs: []string{"i1"}, wantState: []registry.Health{registry.Healthy}, wantSvc: registry.Healthy},
		{name: "consul service without instances", service: "empty"},
		{name: "unknown", service: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, ok := view.Service(tt.service, now)
			if ok != tt.wantOK {
				t.Fatalf("found: got %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if svc.Health != tt.wantSvc {
				t.Errorf("service health: got %s, want %s", svc.Health, tt.wantSvc)
			}
			if len(svc.Instances) != len(tt.wantIDs) {
				t.Fatalf("instances: got %+v, want IDs %v", svc.Instances, tt.wantIDs)
			}
			for i, in := range svc.Instances {
				if in.ID != tt.wantIDs[i] || in.Health != tt.wantState[i] {
					t.Errorf("instance %d: got %s %s, want %s %s", i, in.ID, in.Health, tt.wantIDs[i], tt.wantState[i])
				}
			}
		})
	}

	all := view.Services(now)
	var names []string
	for _, s := range all {
		names = append(names, s.Name)
	}
	if got, want := len(names), 3; got != want || names[0] != "inventory" || names[1] != "orders" || names[2] != "payments" {
		t.Errorf("services: got %v, want [inventory orders payments]", names)
	}
	if all[1].RequestsPerSec != 3 {
		t.Errorf("orders req/s: got %v, want the heartbeat figure 3", all[1].RequestsPerSec)
	}
	if beats[0].Instances[1].Health != registry.Healthy {
		t.Error("the heartbeat registry's service was changed")
	}
	if got := all[0].Instances[0].Address; got != "10.0.0.9:8083" {
		t.Errorf("consul-only address: got %q, want 10.0.0.9:8083", got)
	}
}

func TestInstanceViewEndpoints(t *testing.T) {
	now := time.Unix(1764000000, 0)
	beats := fakeBeats{
		{Name: "orders", Instances: []registry.Instance{
			{ID: "o1", Service: "orders", Address: "10.0.0.1:8081", Version: "v1", Health: registry.Healthy},
			{ID: "o2", Service: "orders", Address: "10.0.0.2:8081", Health: registry.Healthy},
			{ID: "o3", Service: "orders", Health: registry.Healthy}, // no address: not routable
		}},
	}
	catalog := fakeCatalog{
		"orders":    {{ID: "o2", Service: "orders", Status: api.HealthCritical}},
		"inventory": {{ID: "i1", Service: "inventory", Address: "10.0.0.9", Port: 8083, Status: api.HealthPassing}, {ID: "i2", Service: "inventory", Address: "10.0.0.8", Port: 8083, Status: api.HealthCritical}},
	}
	got := InstanceView{Heartbeats: beats, Catalog: catalog}.Endpoints(now)
	want := map[string][]wire.Endpoint{
		"orders":    {{Instance: "o1", Address: "10.0.0.1:8081", Version: "v1"}},
		"inventory": {{Instance: "i1", Address: "10.0.0.9:8083"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("endpoints: got %+v, want %+v", got, want)
	}
}
