package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
)

// controlPlanes is the agent's list of control-plane replicas and the one
// it talks to now. Every background sender (heartbeat, policy long-poll,
// span and log export) asks it for the current base URL and reports a
// failure of that URL; the first failure reported against the current
// replica moves everyone to the next one, round robin, and they stay there
// while it works. It never blocks: the current index is one atomic value.
type controlPlanes struct {
	urls []string // base URLs without a trailing slash; never empty
	cur  atomic.Uint32
}

// errNoControlPlane is returned by parseControlPlanes for a list without a
// single URL in it.
var errNoControlPlane = errors.New("agent: no control-plane URL")

// newControlPlanes returns the replicas in urls (already checked), or nil
// when there are none.
func newControlPlanes(urls []string) *controlPlanes {
	if len(urls) == 0 {
		return nil
	}
	return &controlPlanes{urls: urls}
}

// parseControlPlanes splits a comma-separated list of base URLs (the
// PILOTHOUSE_URL form) and checks each. Blank entries are ignored.
func parseControlPlanes(list string) ([]string, error) {
	var urls []string
	for part := range strings.SplitSeq(list, ",") {
		if part = strings.TrimSpace(part); part != "" {
			urls = append(urls, part)
		}
	}
	return checkControlPlanes(urls)
}

// checkControlPlanes trims the trailing slash of every URL and checks it
// is an http(s) URL; the error names the first bad one by position.
func checkControlPlanes(urls []string) ([]string, error) {
	out := make([]string, 0, len(urls))
	for i, u := range urls {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if err := checkURL(u); err != nil {
			return nil, fmt.Errorf("control plane %d: %w", i+1, err)
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, errNoControlPlane
	}
	return out, nil
}

// current returns the index and base URL of the replica to use now.
func (p *controlPlanes) current() (int, string) {
	i := int(p.cur.Load()) % len(p.urls)
	return i, p.urls[i]
}

// failed reports that the replica at index i failed. If it is still the
// current one, the next replica becomes current; a report about a replica
// others have already left changes nothing, so several senders failing on
// the same replica at once move the agent one step only.
func (p *controlPlanes) failed(i int) {
	if len(p.urls) < 2 {
		return
	}
	next := uint32((i + 1) % len(p.urls))
	p.cur.CompareAndSwap(uint32(i), next)
}

// owns reports whether target is a URL on one of the replicas (a base URL
// followed by a path), which is where the agent's token may be sent.
func (p *controlPlanes) owns(target string) bool {
	if p == nil {
		return false
	}
	for _, u := range p.urls {
		if strings.HasPrefix(target, u+"/") {
			return true
		}
	}
	return false
}

// servesPath reports whether target is path on one of the replicas (for
// example the traces endpoint set to a replica's /v1/traces).
func (p *controlPlanes) servesPath(target, path string) bool {
	if p == nil {
		return false
	}
	for _, u := range p.urls {
		if target == u+path {
			return true
		}
	}
	return false
}

// isReplicaFailure reports whether a request to a replica ended in a way
// that says another replica should be tried: a network error (not the
// caller's own cancellation) or a 5xx or 429 answer. ctx is the request's
// context; resp is nil after a transport error.
func isReplicaFailure(ctx context.Context, resp *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(ctx.Err(), context.Canceled)
	}
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
}
