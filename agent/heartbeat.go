package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pilothouse/pilothouse/agent/internal/batch"
	"github.com/pilothouse/pilothouse/agent/wire"
)

// maxCheckTimeout bounds one health check run.
const maxCheckTimeout = 2 * time.Second

// errCheckTimeout is reported for a check that did not finish in time.
var errCheckTimeout = errors.New("agent: health check timed out")

type check struct {
	name    string
	fn      func(context.Context) error
	running atomic.Bool
}

type heartbeatCounters struct {
	sent, dropped, errors atomic.Uint64
}

func (a *Agent) heartbeatStats() batch.Stats {
	return batch.Stats{
		Exported: a.beats.sent.Load(),
		Dropped:  a.beats.dropped.Load(),
		Errors:   a.beats.errors.Load(),
	}
}

// AddCheck registers a health check. Checks run in the heartbeat goroutine
// before each beat, never on the request path, each bounded by a timeout
// (the smaller of the heartbeat interval and 2s); a check that returns an
// error, panics or times out is reported as failing. A check still running
// from the previous beat is not started again.
func (a *Agent) AddCheck(name string, fn func(context.Context) error) {
	if fn == nil {
		return
	}
	a.checksMu.Lock()
	defer a.checksMu.Unlock()
	for _, c := range a.checks {
		if c.name == name {
			c.fn = fn
			return
		}
	}
	if len(a.checks) < wire.MaxChecks {
		a.checks = append(a.checks, &check{name: name, fn: fn})
	}
}

func (a *Agent) runHeartbeat(ctx context.Context) {
	defer close(a.beatDone)
	a.beat(ctx)
	t := time.NewTicker(a.cfg.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.beat(ctx)
		case <-a.beatStop:
			return
		}
	}
}

// beat builds one heartbeat and posts it; failures are counted and the
// beat is dropped.
func (a *Agent) beat(ctx context.Context) {
	hb := a.heartbeat(ctx)
	if err := a.postHeartbeat(ctx, &hb); err != nil {
		a.beats.errors.Add(1)
		a.beats.dropped.Add(1)
		return
	}
	a.beats.sent.Add(1)
}

// heartbeat assembles the document: identity, check results, the route
// figures since the previous beat and the export counters.
func (a *Agent) heartbeat(ctx context.Context) wire.Heartbeat {
	spans, logs, local := a.spanStats(), a.logStats(), a.localLogStats()
	routes := a.routes.Swap()
	if len(routes) > wire.MaxRoutes {
		routes = routes[:wire.MaxRoutes]
	}
	now := a.cfg.now()
	version, polErr, polErrVersion, rules, breakers := a.policyReport(now)
	return wire.Heartbeat{
		PolicyVersion:      version,
		PolicyError:        polErr,
		PolicyErrorVersion: polErrVersion,
		Rules:              rules,
		Breakers:           breakers,

		Service:    a.service,
		InstanceID: a.cfg.instanceID,
		Address:    a.cfg.address,
		Version:    a.cfg.version,
		StartedAt:  a.started,
		Interval:   wire.Duration(a.cfg.heartbeat),
		Checks:     a.runChecks(ctx),
		Routes:     routes,
		Telemetry: wire.TelemetryStats{
			SpansExported: spans.Exported,
			SpansDropped:  spans.Dropped,
			LogsExported:  logs.Exported,
			LogsDropped:   logs.Dropped,
			ExportErrors:  spans.Errors + logs.Errors + a.beats.errors.Load(),

			LocalLogsDropped: local.Dropped,
		},
		SentAt: now,
	}
}

func (a *Agent) runChecks(ctx context.Context) []wire.CheckResult {
	a.checksMu.Lock()
	checks := make([]*check, len(a.checks))
	fns := make([]func(context.Context) error, len(a.checks))
	for i, c := range a.checks {
		checks[i], fns[i] = c, c.fn
	}
	a.checksMu.Unlock()
	if len(checks) == 0 {
		return nil
	}
	timeout := min(a.cfg.heartbeat, maxCheckTimeout)
	type result struct {
		i int
		r wire.CheckResult
	}
	out := make([]wire.CheckResult, len(checks))
	done := make(chan result, len(checks))
	started := 0
	for i, c := range checks {
		out[i].Name = c.name
		if !c.running.CompareAndSwap(false, true) {
			out[i].Message = "still running since an earlier beat"
			continue
		}
		out[i].Message = errCheckTimeout.Error()
		started++
		go func() {
			defer c.running.Store(false)
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			t0 := time.Now()
			err := callCheck(cctx, fns[i])
			if err == nil && cctx.Err() != nil {
				err = errCheckTimeout
			}
			r := wire.CheckResult{Name: c.name, OK: err == nil, Duration: wire.Duration(time.Since(t0))}
			if err != nil {
				r.Message = truncate(err.Error(), wire.MaxMessageLen)
			}
			done <- result{i, r}
		}()
	}
	// A check that ignores its context is abandoned after the timeout.
	deadline := time.NewTimer(timeout + 100*time.Millisecond)
	defer deadline.Stop()
	for n := 0; n < started; n++ {
		select {
		case res := <-done:
			out[res.i] = res.r
		case <-deadline.C:
			return out
		}
	}
	return out
}

func callCheck(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("agent: health check panicked: %v", p)
		}
	}()
	return fn(ctx)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (a *Agent) postHeartbeat(ctx context.Context, hb *wire.Heartbeat) error {
	body, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("agent: encode heartbeat: %w", err)
	}
	resp, _, err := a.cfg.planes.do(ctx, wire.PathHeartbeat, outbound{
		client: a.cfg.httpClient, method: http.MethodPost, contentType: "application/json", token: a.cfg.token, body: body,
	})
	if err != nil {
		return fmt.Errorf("agent: heartbeat: %w", err)
	}
	reply, readErr := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("agent: heartbeat: %s", resp.Status)
	}
	if readErr == nil {
		a.readReply(reply)
	}
	return nil
}

// maxReplyBytes bounds a heartbeat reply (endpoints of every service).
const maxReplyBytes = 4 << 20

// readReply takes what the control plane answered to a beat: endpoints
// for discovery, rate shares for cluster-scoped limits, and its policy
// version (a newer one than we know makes the policy client poll now).
// Older control planes answer without a body; that is fine.
func (a *Agent) readReply(body []byte) {
	if len(body) == 0 {
		return
	}
	var r wire.HeartbeatReply
	if err := json.Unmarshal(body, &r); err != nil {
		return
	}
	a.endpoints.update(r.Endpoints)
	a.setRateShares(r.RateShares)
	a.pol.mu.Lock()
	behind := r.PolicyVersion != a.pol.seen && r.PolicyVersion > 0
	a.pol.mu.Unlock()
	if behind && a.policyClient != nil {
		a.policyClient.kick()
	}
}
