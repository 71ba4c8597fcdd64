package server

import (
	"context"

	"github.com/pilothouse/pilothouse/controlplane/consul"
	"github.com/pilothouse/pilothouse/controlplane/policy"
	"github.com/pilothouse/pilothouse/controlplane/policyapi"
)

// PolicyStore is what the control plane needs of a policy store: the
// embedded *policy.Store, or *consul.PolicyStore when Config.Consul is set
// so that replicas share policies.
type PolicyStore interface {
	policyapi.Store
	Version(ctx context.Context, service string, version int64) (policy.Change, error)
	Close() error
}

var (
	_ PolicyStore = (*policy.Store)(nil)
	_ PolicyStore = (*consul.PolicyStore)(nil)
)

// openPolicies opens the policy store Config asks for.
func openPolicies(cfg Config) (PolicyStore, error) {
	if cfg.Consul == "" {
		return policy.Open(cfg.DataDir, cfg.Now)
	}
	ctx, cancel := context.WithTimeout(context.Background(), consulOpenTimeout)
	defer cancel()
	pol, err := consul.Open(ctx, consul.Config{Address: cfg.Consul, Token: cfg.ConsulToken, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		// Not pol: a nil *consul.PolicyStore would be a non-nil PolicyStore.
		// consul.Open's error names the address; New adds the context.
		return nil, err
	}
	return pol, nil
}
