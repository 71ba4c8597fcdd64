package services

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// Traffic sends a steady mix of shop requests to the gateway at about rate
// requests per second until ctx ends: mostly order lookups, some order
// placements, a few slow reports, and the odd lookup of a missing order.
func Traffic(ctx context.Context, gatewayURL string, rate float64, client *http.Client) {
	if rate <= 0 {
		rate = 5
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	base := strings.TrimRight(gatewayURL, "/")
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	// At most a few requests in flight: a slow shop slows the generator
	// rather than piling up goroutines.
	slots := make(chan struct{}, 16)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			continue
		}
		go func() {
			defer func() { <-slots }()
			_ = shopRequest(ctx, client, base)
		}()
	}
}

func shopRequest(ctx context.Context, client *http.Client, base string) error {
	var req *http.Request
	var err error
	switch p := rand.Float64(); {
	case p < 0.60:
		id := rand.N(500) + 1
		if rand.Float64() < 0.03 {
			id = 0
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/orders/%d", base, id), nil)
	case p < 0.92:
		body := fmt.Sprintf(`{"sku":"sku-%d","quantity":%d,"amount":%d.99}`, rand.N(20), rand.N(3)+1, rand.N(90)+10)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/orders", strings.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	default:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/reports/daily", nil)
	}
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}
