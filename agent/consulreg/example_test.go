package consulreg_test

import (
	"context"
	"log"
	"time"

	"github.com/pilothouse/pilothouse/agent/consulreg"
)

// A service registers itself with an HTTP check on its health endpoint;
// Consul drops it if the check stays critical for a minute (a crash), and
// Close removes it at a clean shutdown.
func Example() {
	reg, err := consulreg.Register(context.Background(), consulreg.Config{
		ConsulAddress:           "127.0.0.1:8500",
		Service:                 "orders",
		ID:                      "orders-1", // the agent's instance ID, so heartbeats and catalog match
		Address:                 "127.0.0.1",
		Port:                    8081,
		Tags:                    []string{"pilothouse"},
		Meta:                    map[string]string{"version": "v1.4.0"},
		HealthURL:               "http://127.0.0.1:8081/healthz",
		CheckInterval:           5 * time.Second,
		DeregisterCriticalAfter: time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	// ... serve ...
}

// Without a health endpoint, a TTL check kept passing by a goroutine
// reports Health's verdict; a hung process stops refreshing it and turns
// critical.
func Example_ttl() {
	reg, err := consulreg.Register(context.Background(), consulreg.Config{
		Service: "payments",
		Port:    8082,
		TTL:     15 * time.Second,
		Health:  func() error { return nil }, // e.g. ping the database
	})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
}
