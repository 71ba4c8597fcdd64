package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/pilothouse/pilothouse/agent/wire"
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

// outbound is one request of the agent's background senders.
type outbound struct {
	client      *http.Client
	method      string
	contentType string // "" sends none
	token       string // sent as a Bearer token when set
	headers     []keyValue
	body        []byte // nil sends none
}

// do sends o to target. retryable reports a failure worth another try
// (see isReplicaFailure); resp is nil when err is not.
func (o outbound) do(ctx context.Context, target string) (resp *http.Response, retryable bool, err error) {
	var body io.Reader
	if o.body != nil {
		body = bytes.NewReader(o.body)
	}
	req, err := http.NewRequestWithContext(ctx, o.method, target, body)
	if err != nil {
		return nil, false, err
	}
	for _, h := range o.headers {
		req.Header.Set(h.key, h.value)
	}
	if o.contentType != "" {
		req.Header.Set("Content-Type", o.contentType)
	}
	if o.token != "" {
		req.Header.Set(wire.HeaderAuthorization, "Bearer "+o.token)
	}
	resp, err = o.client.Do(req)
	return resp, isReplicaFailure(ctx, resp, err), err
}

// do sends o to path on the current replica; a failure worth another try
// moves the agent to the next replica (for the following requests).
func (p *controlPlanes) do(ctx context.Context, path string, o outbound) (*http.Response, bool, error) {
	replica, base := p.current()
	resp, retryable, err := o.do(ctx, base+path)
	if retryable {
		p.failed(replica)
	}
	return resp, retryable, err
}
