package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// Policy long-poll backoff after an error: from defaultBackoffMin doubling
// to defaultBackoffMax, with jitter.
const (
	defaultBackoffMin = time.Second
	defaultBackoffMax = 30 * time.Second
)

// errPolicyStatus is wrapped by poll errors for unexpected HTTP statuses.
var errPolicyStatus = errors.New("agent: policy poll: unexpected status")

// backoff returns the wait before retry number attempt (0-based): min
// doubled attempt times, capped at max, then scaled by a jitter factor in
// [0.5, 1.5) drawn from r (a uniform number in [0, 1)), never above max.
func backoff(attempt int, lo, hi time.Duration, r float64) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	d = time.Duration(float64(d) * (0.5 + r))
	return min(d, hi)
}

// policyClient holds the long-poll loop's state.
type policyClient struct {
	client *http.Client
	wake   chan struct{}

	mu     sync.Mutex
	cancel context.CancelFunc // of the poll in flight
	polls  uint64             // completed polls, for tests
}

func newPolicyClient(cfg *config) *policyClient {
	hc := *cfg.httpClient
	// The long-poll outlives the export client's timeout; its own context
	// bounds it instead.
	hc.Timeout = 0
	return &policyClient{client: &hc, wake: make(chan struct{}, 1)}
}

// kick makes the loop poll at once: it ends the poll in flight and any
// backoff wait. It never blocks.
func (pc *policyClient) kick() {
	select {
	case pc.wake <- struct{}{}:
	default:
	}
	pc.mu.Lock()
	if pc.cancel != nil {
		pc.cancel()
	}
	pc.mu.Unlock()
}

// runPolicy is the long-poll loop; it ends when ctx does.
func (a *Agent) runPolicy(ctx context.Context) {
	defer close(a.policyDone)
	pc := a.policyClient
	attempt := 0
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, a.cfg.policyWait+15*time.Second)
		pc.mu.Lock()
		pc.cancel = cancel
		pc.mu.Unlock()
		err := a.pollPolicy(pctx)
		kicked := pctx.Err() != nil && ctx.Err() == nil && !errors.Is(pctx.Err(), context.DeadlineExceeded)
		pc.mu.Lock()
		pc.cancel = nil
		pc.polls++
		pc.mu.Unlock()
		cancel()
		if err == nil || kicked {
			attempt = 0
			continue
		}
		wait := backoff(attempt, a.cfg.policyBackoffMin, a.cfg.policyBackoffMax, rand.Float64())
		attempt++
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-pc.wake:
			attempt = 0
		case <-t.C:
		}
		t.Stop()
	}
}

// pollPolicy makes one long-poll request and applies what it returns.
// A policy that fails validation is not an error of the poll: it is
// recorded for the heartbeat (the NACK) and the loop waits for the next.
func (a *Agent) pollPolicy(ctx context.Context) error {
	a.pol.mu.Lock()
	seen := a.pol.seen
	a.pol.mu.Unlock()
	q := url.Values{}
	q.Set("service", a.service)
	q.Set("instance", a.cfg.instanceID)
	q.Set("version", strconv.FormatInt(seen, 10))
	q.Set("wait", a.cfg.policyWait.String())
	// On a replica's failure the next poll (after the usual backoff) asks
	// the next replica, from the version this one gave us.
	resp, _, err := a.cfg.planes.do(ctx, wire.PathPolicy+"?"+q.Encode(), outbound{
		client: a.policyClient.client, method: http.MethodGet, token: a.cfg.token,
	})
	if err != nil {
		return fmt.Errorf("agent: policy poll: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil
	case http.StatusOK:
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("%w: %s", errPolicyStatus, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, wire.MaxPolicyBytes+1<<10))
	if err != nil {
		return fmt.Errorf("agent: policy poll: read: %w", err)
	}
	var up wire.PolicyUpdate
	if err := json.Unmarshal(body, &up); err != nil {
		// Not a policy document: NACK it under the version it claims, if
		// any, and back off.
		var v struct {
			Policy struct {
				Version int64 `json:"version"`
			} `json:"policy"`
		}
		_ = json.Unmarshal(body, &v)
		a.rejectPolicy(v.Policy.Version, fmt.Errorf("agent: policy update is not valid JSON: %w", err))
		return fmt.Errorf("agent: policy poll: %w", err)
	}
	if err := a.ApplyPolicy(up.Policy); err != nil {
		a.logger.Warn("agent: policy rejected", "version", up.Policy.Version, "err", err.Error())
	}
	return nil
}

// rejectPolicy records a NACK for an update that could not be decoded.
func (a *Agent) rejectPolicy(version int64, err error) {
	a.pol.mu.Lock()
	a.pol.errMsg, a.pol.errVersion = truncate(err.Error(), wire.MaxMessageLen), version
	a.pol.mu.Unlock()
}

// writePolicyFile stores p at path atomically: a temporary file in the same
// directory, synced, then renamed over the old one.
func writePolicyFile(path string, p wire.Policy) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: encode policy: %w", err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("agent: write policy file: %w", err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // a no-op after the rename
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("agent: write policy file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("agent: write policy file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("agent: write policy file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("agent: write policy file: %w", err)
	}
	return nil
}

// loadPolicyFile applies the policy stored at path, if any. A missing
// file is not an error; an unreadable or invalid one is returned.
func (a *Agent) loadPolicyFile(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: read policy file: %w", err)
	}
	p, err := wire.DecodePolicy(bytes.NewReader(data))
	if err != nil {
		err = fmt.Errorf("agent: policy file %s: %w", path, err)
		a.rejectPolicy(p.Version, err)
		return err
	}
	return a.ApplyPolicy(p)
}
