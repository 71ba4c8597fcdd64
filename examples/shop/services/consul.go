package services

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/pilothouse/pilothouse/agent/consulreg"
)

// Consul health check of a shop instance: Consul GETs /healthz every
// consulCheckInterval and removes an instance whose check stayed critical
// for consulDeregisterAfter (a crashed process).
const (
	consulCheckInterval   = 5 * time.Second
	consulDeregisterAfter = time.Minute
)

// registerInConsul registers the instance of service reachable at
// hostport in the Consul agent at consulAddr, under the agent's instance
// ID (so the control plane matches the catalog entry with the instance's
// heartbeats), with an HTTP check on its /healthz.
func registerInConsul(ctx context.Context, consulAddr, service, hostport, instanceID string) (*consulreg.Registration, error) {
	host, portText, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("shop: advertised address: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("shop: advertised port %q: %w", portText, err)
	}
	return consulreg.Register(ctx, consulreg.Config{
		ConsulAddress:           consulAddr,
		Service:                 service,
		ID:                      instanceID,
		Address:                 host,
		Port:                    port,
		Tags:                    []string{"pilothouse", "shop"},
		Meta:                    map[string]string{"version": "v1"},
		HealthURL:               "http://" + net.JoinHostPort(host, portText) + "/healthz",
		CheckInterval:           consulCheckInterval,
		DeregisterCriticalAfter: consulDeregisterAfter,
	})
}

// advertisedAddr turns a listen address into one others can dial: an
// unspecified host (0.0.0.0, ::, empty) becomes this host's name.
func advertisedAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if name, err := os.Hostname(); err == nil && name != "" {
			return net.JoinHostPort(name, port)
		}
	}
	return listen
}
