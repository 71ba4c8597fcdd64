package services

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent"
)

// Names of the demo services.
const (
	Gateway   = "gateway"
	Orders    = "orders"
	Payments  = "payments"
	Inventory = "inventory"
)

// Config wires one service.
type Config struct {
	// Agent is the service's Pilothouse agent.
	Agent *agent.Agent
	// Peers maps a service name to its base URL, e.g. "orders" ->
	// "http://127.0.0.1:8081".
	Peers map[string]string
	// ErrorRate is the share of requests that fail on purpose (0.03 = 3%).
	ErrorRate float64
	// Sleep waits for d or until ctx ends; nil means a real timer. Tests
	// pass a function that returns at once.
	Sleep func(ctx context.Context, d time.Duration)
}

func (c *Config) sleep(ctx context.Context, d time.Duration) {
	if c.Sleep != nil {
		c.Sleep(ctx, d)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// latency returns a random duration in [lo, hi).
func latency(lo, hi time.Duration) time.Duration {
	return lo + rand.N(hi-lo)
}

func (c *Config) fails() bool { return rand.Float64() < c.ErrorRate }

func newEngine(cfg *Config) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), cfg.Agent.Middleware())
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"ok": true}) })
	r.GET("/metrics", gin.WrapH(cfg.Agent.MetricsHandler()))
	return r
}

// client calls peers through the agent's Transport, so trace context and
// the request ID travel with every call.
type client struct {
	http  *http.Client
	peers map[string]string
}

func newClient(cfg *Config) *client {
	return &client{
		http:  &http.Client{Transport: cfg.Agent.Transport(nil), Timeout: 5 * time.Second},
		peers: cfg.Peers,
	}
}

// call sends method to peer+path and decodes a JSON answer into out.
// It returns the peer's status code.
func (cl *client) call(ctx context.Context, method, peer, path string, body any, out any) (int, error) {
	base, ok := cl.peers[peer]
	if !ok {
		return 0, fmt.Errorf("shop: no address for %s", peer)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("shop: %s %s: %w", peer, path, err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("shop: %s %s: bad answer: %w", peer, path, err)
		}
	} else {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	}
	return resp.StatusCode, nil
}
