package consulreg_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pilothouse/pilothouse/agent/consulreg"
	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
)

func TestRegisterRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  consulreg.Config
	}{
		{name: "no service", cfg: consulreg.Config{Port: 80}},
		{name: "no port", cfg: consulreg.Config{Service: "orders"}},
		{name: "port too big", cfg: consulreg.Config{Service: "orders", Port: 70000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := consulreg.Register(context.Background(), tt.cfg)
			if !errors.Is(err, consulreg.ErrConfig) {
				t.Fatalf("got %v, want ErrConfig", err)
			}
		})
	}
}

// waitFor runs blocking health queries for service until ok accepts the
// entries, or fails the test after a deadline.
func waitFor(t *testing.T, c *api.Client, service string, ok func([]*api.ServiceEntry) bool) []*api.ServiceEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var index uint64
	for {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Second}).WithContext(ctx)
		entries, meta, err := c.Health().Service(service, "", false, q)
		if err != nil {
			t.Fatalf("health of %s: %v", service, err)
		}
		if ok(entries) {
			return entries
		}
		index = meta.LastIndex
	}
}

func status(entries []*api.ServiceEntry) string {
	if len(entries) != 1 {
		return "count " + strconv.Itoa(len(entries))
	}
	return entries[0].Checks.AggregatedStatus()
}

func TestRegisterInRealConsul(t *testing.T) {
	srv := consultest.Start(t)
	client := srv.Client(t)

	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer healthy.Close()
	_, port, _ := net.SplitHostPort(healthy.Listener.Addr().String())
	httpPort, _ := strconv.Atoi(port)

	tests := []struct {
		name string
		cfg  consulreg.Config
	}{
		{name: "http check", cfg: consulreg.Config{
			Service: "orders", Address: "127.0.0.1", Port: httpPort,
			HealthURL: healthy.URL, CheckInterval: 200 * time.Millisecond, CheckTimeout: time.Second,
		}},
		{name: "ttl check", cfg: consulreg.Config{Service: "payments", Address: "127.0.0.1", Port: 9001, TTL: 3 * time.Second,
			InstanceID: "payments-agent-7", Meta: map[string]string{"version": "1.2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ConsulAddress = srv.Addr
			tt.cfg.DeregisterCriticalAfter = 90 * time.Second
			reg, err := consulreg.Register(context.Background(), tt.cfg)
			if err != nil {
				t.Fatalf("Register: %v", err)
			}
			entries := waitFor(t, client, tt.cfg.Service, func(e []*api.ServiceEntry) bool {
				return status(e) == api.HealthPassing
			})
			if got := entries[0].Service.ID; got != reg.ID() {
				t.Errorf("got ID %q, want %q", got, reg.ID())
			}
			wantInstance := tt.cfg.InstanceID
			if wantInstance == "" {
				wantInstance = reg.ID()
			}
			if got := entries[0].Service.Meta[wire.ConsulMetaInstance]; got != wantInstance {
				t.Errorf("meta %s: got %q, want %q", wire.ConsulMetaInstance, got, wantInstance)
			}
			if want := tt.cfg.Meta["version"]; entries[0].Service.Meta["version"] != want {
				t.Errorf("meta version: got %q, want %q", entries[0].Service.Meta["version"], want)
			}
			if got := entries[0].Service.Port; got != tt.cfg.Port {
				t.Errorf("got port %d, want %d", got, tt.cfg.Port)
			}
			checks, err := client.Agent().Checks()
			if err != nil {
				t.Fatalf("Checks: %v", err)
			}
			if _, ok := checks[reg.CheckID()]; !ok {
				t.Fatalf("check %s not found", reg.CheckID())
			}
			if err := reg.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			waitFor(t, client, tt.cfg.Service, func(e []*api.ServiceEntry) bool { return len(e) == 0 })
			if err := reg.Close(); err != nil {
				t.Errorf("second Close: got %v, want nil", err)
			}
		})
	}
}

func TestTTLCheckFollowsHealth(t *testing.T) {
	srv := consultest.Start(t)
	client := srv.Client(t)
	var sick atomic.Bool
	reg, err := consulreg.Register(context.Background(), consulreg.Config{
		ConsulAddress: srv.Addr, Service: "inventory", Port: 9002,
		TTL: 300 * time.Millisecond,
		Health: func() error {
			if sick.Load() {
				return errors.New("database unreachable")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	defer reg.Close()
	waitFor(t, client, "inventory", func(e []*api.ServiceEntry) bool { return status(e) == api.HealthPassing })
	sick.Store(true)
	entries := waitFor(t, client, "inventory", func(e []*api.ServiceEntry) bool { return status(e) == api.HealthCritical })
	var output string
	for _, c := range entries[0].Checks {
		if c.CheckID == reg.CheckID() {
			output = c.Output
		}
	}
	if output != "database unreachable" {
		t.Errorf("got check output %q, want %q", output, "database unreachable")
	}
	sick.Store(false)
	waitFor(t, client, "inventory", func(e []*api.ServiceEntry) bool { return status(e) == api.HealthPassing })
}
