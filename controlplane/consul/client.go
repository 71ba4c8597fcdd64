package consul

import (
	"fmt"

	"github.com/hashicorp/consul/api"
)

// newClient returns a Consul API client for the agent at address with
// token; empty values keep consul/api's defaults (CONSUL_HTTP_ADDR,
// CONSUL_HTTP_TOKEN, 127.0.0.1:8500). It does not contact Consul.
func newClient(address, token string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if address != "" {
		cfg.Address = address
	}
	if token != "" {
		cfg.Token = token
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul: client: %w", err)
	}
	return client, nil
}

// addressOf is the agent address newClient(address, ...) talks to.
func addressOf(address string) string {
	if address != "" {
		return address
	}
	return api.DefaultConfig().Address
}
