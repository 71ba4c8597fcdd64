package policyapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/policy"
)

// BenchmarkPropagation1000Agents measures how long a policy change takes
// to reach 1,000 agents long-polling one control plane over loopback: from
// the PUT being sent to each agent holding the new version. Each agent is
// a goroutine with its own connection, doing what the real agent does.
func BenchmarkPropagation1000Agents(b *testing.B) {
	const agents = 1000
	st, err := policy.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	mux := http.NewServeMux()
	New(Config{Store: st}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * agents, MaxConnsPerHost: 0}}
	ctx, cancel := context.WithCancel(context.Background())
	received := make(chan int64, agents*4)
	var wg sync.WaitGroup
	for i := 0; i < agents; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var version int64
			for ctx.Err() == nil {
				url := fmt.Sprintf("%s%s?service=orders&instance=i%d&version=%d&wait=30s", srv.URL, wire.PathPolicy, i, version)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				if resp.StatusCode == http.StatusOK {
					var up wire.PolicyUpdate
					if json.NewDecoder(resp.Body).Decode(&up) == nil && up.Policy.Version != version {
						version = up.Policy.Version
						received <- version
					}
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	// Let every agent reach its long-poll wait.
	time.Sleep(2 * time.Second)

	var latencies []time.Duration
	var base int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		doc := fmt.Sprintf(`{"service":"orders","version":%d,"degradations":[{"id":"d","match":{"route":"/x"},"enabled":%v,"fallback":{"status":200}}]}`, base, i%2 == 0)
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/api/v1/policies/orders", strings.NewReader(doc))
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("put: %v %v", err, resp)
		}
		resp.Body.Close()
		base++
		for n := 0; n < agents; {
			if v := <-received; v == base {
				latencies = append(latencies, time.Since(start))
				n++
			}
		}
	}
	b.StopTimer()
	cancel()
	srv.CloseClientConnections()
	wg.Wait()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1.0), "max-ms")
}
