package services

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
	"github.com/pilothouse/pilothouse/controlplane/server"
	"github.com/pilothouse/pilothouse/controlplane/server/servertest"
)

func TestPeerURLs(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		byName bool
		want   map[string]string
	}{
		{name: "local defaults", want: map[string]string{
			Orders: "http://127.0.0.1:8081", Payments: "http://127.0.0.1:8082", Inventory: "http://127.0.0.1:8083"}},
		{name: "by service name with Consul", byName: true, want: map[string]string{
			Orders: "http://orders", Payments: "http://payments", Inventory: "http://inventory"}},
		{name: "environment wins", byName: true, env: map[string]string{EnvOrdersURL: "http://o:1"}, want: map[string]string{
			Orders: "http://o:1", Payments: "http://payments", Inventory: "http://inventory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := peerURLs(func(k string) string { return tt.env[k] }, tt.byName)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAdvertisedAddr(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no hostname")
	}
	tests := []struct {
		name, listen, want string
	}{
		{name: "loopback kept", listen: "127.0.0.1:8081", want: "127.0.0.1:8081"},
		{name: "name kept", listen: "orders:8081", want: "orders:8081"},
		{name: "any IPv4", listen: "0.0.0.0:8081", want: net.JoinHostPort(host, "8081")},
		{name: "any IPv6", listen: "[::]:8081", want: net.JoinHostPort(host, "8081")},
		{name: "no host", listen: ":8081", want: net.JoinHostPort(host, "8081")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := advertisedAddr(tt.listen); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// shopProcess is one service started with run, as its binary would.
type shopProcess struct {
	addr string
	stop context.CancelFunc
	done chan error
	once sync.Once
}

func startShopService(t *testing.T, name string, args []string, env map[string]string) *shopProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &shopProcess{stop: cancel, done: make(chan error, 1)}
	listening := make(chan string, 1)
	go func() {
		p.done <- run(ctx, name, append([]string{"-addr", "127.0.0.1:0", "-error-rate", "0"}, args...),
			func(k string) string { return env[k] }, func(addr string) { listening <- addr })
	}()
	select {
	case p.addr = <-listening:
	case err := <-p.done:
		t.Fatalf("%s: run ended before listening: %v", name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not listening after 10s", name)
	}
	t.Cleanup(func() { p.shutdown(t) })
	return p
}

// shutdown stops the service as SIGTERM would and waits for run to end.
func (p *shopProcess) shutdown(t *testing.T) {
	t.Helper()
	p.once.Do(func() {
		p.stop()
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("run: got error %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not return 10s after its context ended")
		}
	})
}

// TestShopInConsul: with -consul every shop service registers in Consul
// with a passing HTTP check on /healthz, the gateway reaches orders (and
// orders its peers) by service name through the agent's discovery, and a
// stopped service leaves the catalog.
func TestShopInConsul(t *testing.T) {
	c := consultest.Start(t)
	consul := c.Client(t)
	const token = "shop-consul-test-token"
	cpURL, _ := servertest.Start(t, server.Config{Consul: c.Addr, AgentToken: token})
	// The agents read their control plane from the environment, as the
	// binaries do.
	t.Setenv(wire.EnvURL, cpURL)
	t.Setenv(wire.EnvToken, token)

	procs := map[string]*shopProcess{}
	for _, name := range []string{Inventory, Payments, Orders, Gateway} {
		procs[name] = startShopService(t, name, []string{"-consul", c.Addr}, nil)
	}
	for name, p := range procs {
		_, port, _ := net.SplitHostPort(p.addr)
		await.Until(t, 30*time.Second, name+" passing in Consul", func() (bool, string) {
			entries, _, err := consul.Health().Service(name, "", true, nil)
			for _, e := range entries {
				if strconv.Itoa(e.Service.Port) == port && e.Service.Address == "127.0.0.1" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d passing entries (err %v)", len(entries), err)
		})
	}
	checks, _, err := consul.Health().Checks(Orders, nil)
	if err != nil || len(checks) != 1 || checks[0].Type != "http" {
		t.Errorf("orders checks: got %+v (err %v), want one http check", checks, err)
	}

	// The gateway calls http://orders/..., orders http://inventory/...:
	// only the agents' discovery can resolve those names.
	gateway := "http://" + procs[Gateway].addr
	await.Until(t, 30*time.Second, "an order served through discovery by name", func() (bool, string) {
		resp, err := http.Get(gateway + "/api/orders/7")
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, body)
	})

	procs[Orders].shutdown(t)
	entries, _, err := consul.Catalog().Service(Orders, "", nil)
	if err != nil || len(entries) != 0 {
		t.Errorf("orders after stop: got %d catalog entries (err %v), want 0", len(entries), err)
	}
	if others, _, err := consul.Catalog().Service(Payments, "", nil); err != nil || len(others) != 1 {
		t.Errorf("payments: got %d catalog entries (err %v), want 1", len(others), err)
	}
}
