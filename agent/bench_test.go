package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// The agent-overhead benchmarks serve the same Gin route bare and with the
// full agent: 100% sampling, spans and logs exported to a local OTLP sink
// that discards, metrics, the access log and one log line from the
// handler, local JSON log lines encoded and written to a discarding writer.
//
//	go test ./agent -run '^$' -bench 'Gin|Loopback' -benchtime 3s -count 3

// discardWriter throws bytes away without being io.Discard, so that the
// agent still encodes local JSON lines.
type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func sinkServer(b *testing.B) *httptest.Server {
	b.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(s.Close)
	return s
}

// benchSetup says what runs in front of the benchmark route.
type benchSetup int

const (
	bare benchSetup = iota
	// bareWithLog is bare Gin whose route logs the agent route's line
	// through slog's own JSON handler to the same discarding writer.
	bareWithLog
	withAgent
	// withAgentAndPolicy adds fullPolicy: a rule of every kind.
	withAgentAndPolicy
)

func benchEngine(b *testing.B, setup benchSetup) *gin.Engine {
	b.Helper()
	r := gin.New()
	if setup == bare {
		r.GET("/users/:id", func(c *gin.Context) {
			c.String(http.StatusOK, "hello user")
		})
		return r
	}
	if setup == bareWithLog {
		logger := slog.New(slog.NewJSONHandler(discardWriter{}, nil))
		r.GET("/users/:id", func(c *gin.Context) {
			logger.Info("loading user", "user", c.Param("id"))
			c.String(http.StatusOK, "hello user")
		})
		return r
	}
	sink := sinkServer(b)
	// One log line per request, as the benchmark defines the full
	// agent: the handler's. The access line would be a second.
	a, err := New("bench", withEnv(noEnv), WithControlPlane(sink.URL), WithSampleRatio(1),
		WithLocalLog(discardWriter{}), WithInstanceID("bench-1"), WithAccessLog(false))
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	if setup == withAgentAndPolicy {
		if err := a.ApplyPolicy(fullPolicy("bench")); err != nil {
			b.Fatalf("ApplyPolicy: %v", err)
		}
	}
	r.Use(a.Middleware())
	r.GET("/users/:id", func(c *gin.Context) {
		Logger(c).Info("loading user", "user", c.Param("id"))
		c.String(http.StatusOK, "hello user")
	})
	return r
}

// benchWriter is a reusable http.ResponseWriter.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }

func benchInProcess(b *testing.B, setup benchSetup) {
	r := benchEngine(b, setup)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/users/42", nil)
		req.RemoteAddr = "127.0.0.1:5000"
		w := &benchWriter{h: make(http.Header)}
		for pb.Next() {
			clear(w.h)
			r.ServeHTTP(w, req)
			if w.code != 0 && w.code != http.StatusOK {
				b.Errorf("status: got %d, want 200", w.code)
			}
		}
	})
}

func BenchmarkGinBare(b *testing.B)            { benchInProcess(b, bare) }
func BenchmarkGinBareWithLog(b *testing.B)     { benchInProcess(b, bareWithLog) }
func BenchmarkGinAgent(b *testing.B)           { benchInProcess(b, withAgent) }
func BenchmarkGinAgentWithPolicy(b *testing.B) { benchInProcess(b, withAgentAndPolicy) }

// benchLoopback serves on 127.0.0.1 and drives the server with concurrent
// keep-alive clients (4 per GOMAXPROCS), reporting requests per second.
func benchLoopback(b *testing.B, setup benchSetup) {
	r := benchEngine(b, setup)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String() + "/users/42"
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Errorf("get: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status: got %d, want 200", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	// CPU per request (server, load generator and exporters together) is
	// steadier than req/s on a machine shared with other work.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/req")
}

// processCPU returns the user+system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkLoopbackBare(b *testing.B)            { benchLoopback(b, bare) }
func BenchmarkLoopbackAgent(b *testing.B)           { benchLoopback(b, withAgent) }
func BenchmarkLoopbackAgentWithPolicy(b *testing.B) { benchLoopback(b, withAgentAndPolicy) }
