package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
)

// Agent is an authenticated agent: the token it presented and the
// services that token may act for.
type Agent struct {
	// Token names the token: a named agent token's name, "agent-token"
	// for the single shared token, "" when agent endpoints are open.
	Token string
	// Services limits the agent; empty means any service.
	Services []string
}

// AllowsService reports whether the agent may act for service.
func (a Agent) AllowsService(service string) bool {
	return len(a.Services) == 0 || slices.Contains(a.Services, service)
}

// CheckService returns an error wrapping ErrServiceNotAllowed when the
// agent may not act for service.
func (a Agent) CheckService(service string) error {
	if a.AllowsService(service) {
		return nil
	}
	return fmt.Errorf("%w: token %q may not act for service %q", ErrServiceNotAllowed, a.Token, service)
}

// SharedAgentToken names the single token given with --agent-token.
const SharedAgentToken = "agent-token"

// AgentAuthenticator checks agents' bearer tokens: the shared token (if
// configured) or a named agent token. When neither a shared token nor any
// active named agent token exists, agent endpoints are open, as before
// authentication existed; once either exists, a valid token is required.
// It is safe for concurrent use.
type AgentAuthenticator struct {
	store  *Store
	shared []byte // SHA-256 of the shared token; nil when none
}

// NewAgentAuthenticator returns an AgentAuthenticator over store, with
// shared as the single shared token ("" for none).
func NewAgentAuthenticator(store *Store, shared string) *AgentAuthenticator {
	a := &AgentAuthenticator{store: store}
	if shared != "" {
		a.shared = digest(shared)
	}
	return a
}

// Authenticate identifies the agent making r. Errors wrap
// ErrUnauthenticated or ErrRevoked, or are storage failures.
func (a *AgentAuthenticator) Authenticate(r *http.Request) (Agent, error) {
	tok, ok := bearer(r)
	if !ok {
		open, err := a.open(r.Context())
		if err != nil {
			return Agent{}, err
		}
		if open {
			return Agent{}, nil
		}
		return Agent{}, fmt.Errorf("%w: missing agent bearer token", ErrUnauthenticated)
	}
	if a.shared != nil {
		sum := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(sum[:], a.shared) == 1 {
			return Agent{Token: SharedAgentToken}, nil
		}
	}
	t, err := a.store.LookupToken(r.Context(), KindAgent, tok)
	if err != nil {
		if IsAuthError(err) {
			return Agent{}, fmt.Errorf("%w: invalid agent token", err)
		}
		return Agent{}, err
	}
	return Agent{Token: t.Name, Services: t.Services}, nil
}

func (a *AgentAuthenticator) open(ctx context.Context) (bool, error) {
	if a.shared != nil {
		return false, nil
	}
	any, err := a.store.HasActiveTokens(ctx, KindAgent)
	return !any, err
}

type agentKey struct{}

// WithAgent returns ctx carrying the authenticated agent.
func WithAgent(ctx context.Context, a Agent) context.Context {
	return context.WithValue(ctx, agentKey{}, a)
}

// AgentFrom returns the agent the middleware authenticated for ctx's
// request.
func AgentFrom(ctx context.Context) (Agent, bool) {
	a, ok := ctx.Value(agentKey{}).(Agent)
	return a, ok
}
