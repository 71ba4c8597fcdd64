package consul

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pilothouse/pilothouse/agent/consulreg"
	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
	"github.com/pilothouse/pilothouse/controlplane/registry"
)

func TestMergeInstances(t *testing.T) {
	beat := func(id string, h registry.Health) registry.Instance {
		return registry.Instance{ID: id, Service: "orders", Health: h, Version: "v1",
			Checks: []wire.CheckResult{{Name: "db", OK: true}}}
	}
	cat := func(id, status string) CatalogInstance {
		return CatalogInstance{ID: id, Service: "orders", Address: "10.0.0.1", Port: 8080, Status: status,
			Meta: map[string]string{MetaVersion: "v2"}, Checks: []wire.CheckResult{{Name: "consul: orders health", OK: status == api.HealthPassing}}}
	}
	tests := []struct {
		name    string
		beats   []registry.Instance
		catalog []CatalogInstance
		want    []registry.Instance
	}{
		{name: "heartbeats only", beats: []registry.Instance{beat("a", registry.Healthy)}, want: []registry.Instance{beat("a", registry.Healthy)}},
		{
			name: "consul passing keeps heartbeat health", beats: []registry.Instance{beat("a", registry.Degraded)},
			catalog: []CatalogInstance{cat("a", api.HealthPassing)},
			want: []registry.Instance{{ID: "a", Service: "orders", Health: registry.Degraded, Version: "v1",
				Checks: []wire.CheckResult{{Name: "db", OK: true}, {Name: "consul: orders health", OK: true}}}},
		},
		{
			name: "consul critical marks down", beats: []registry.Instance{beat("a", registry.Healthy)},
			catalog: []CatalogInstance{cat("a", api.HealthCritical)},
			want: []registry.Instance{{ID: "a", Service: "orders", Health: registry.Down, Version: "v1",
				Checks: []wire.CheckResult{{Name: "db", OK: true}, {Name: "consul: orders health", OK: false}}}},
		},
		{
			name: "consul only instance is added", beats: []registry.Instance{beat("b", registry.Healthy)},
			catalog: []CatalogInstance{cat("a", api.HealthWarning)},
			want: []registry.Instance{
				{ID: "a", Service: "orders", Address: "10.0.0.1:8080", Version: "v2", Health: registry.Degraded,
					Checks: []wire.CheckResult{{Name: "consul: orders health", OK: false}}},
				beat("b", registry.Healthy),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MergeInstances(tt.beats, tt.catalog)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d instances, want %d", len(got), len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.ID != w.ID || g.Health != w.Health || g.Address != w.Address || g.Version != w.Version || !slices.Equal(g.Checks, w.Checks) {
					t.Errorf("instance %d: got %+v, want %+v", i, g, w)
				}
			}
		})
	}
	// The heartbeat slice is not changed.
	beats := []registry.Instance{beat("a", registry.Healthy)}
	MergeInstances(beats, []CatalogInstance{cat("a", api.HealthCritical)})
	if beats[0].Health != registry.Healthy || len(beats[0].Checks) != 1 {
		t.Errorf("input changed: got %+v", beats[0])
	}
}

// waitCatalog waits on c.Changed until ok accepts service's instances.
func waitCatalog(t *testing.T, c *Catalog, service string, ok func([]CatalogInstance) bool) []CatalogInstance {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		changed := c.Changed()
		if got := c.Instances(service); ok(got) {
			return got
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("catalog of %s: got %+v, condition never met", service, c.Instances(service))
		}
	}
}

func TestCatalogFollowsRegistrations(t *testing.T) {
	srv := consultest.Start(t)
	cat, err := WatchCatalog(CatalogConfig{Address: srv.Addr})
	if err != nil {
		t.Fatalf("WatchCatalog: %v", err)
	}
	defer cat.Close()

	reg, err := consulreg.Register(context.Background(), consulreg.Config{
		ConsulAddress: srv.Addr, Service: "orders", ID: "orders-consul-1", InstanceID: "orders-7f3", Address: "127.0.0.1", Port: 9100,
		Meta: map[string]string{MetaVersion: "v3"}, TTL: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	got := waitCatalog(t, cat, "orders", func(in []CatalogInstance) bool {
		return len(in) == 1 && in[0].Status == api.HealthPassing
	})
	if got[0].ID != "orders-7f3" || got[0].Port != 9100 || got[0].Address != "127.0.0.1" {
		t.Errorf("instance: got %+v, want ID orders-7f3 at 127.0.0.1:9100", got[0])
	}
	if !slices.Contains(cat.Services(), "orders") {
		t.Errorf("services: got %v, want orders listed", cat.Services())
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitCatalog(t, cat, "orders", func(in []CatalogInstance) bool { return len(in) == 0 })
}
