// Command benchserver serves the agent benchmark's route for an external
// load generator, so agent overhead can be measured over loopback with the
// load in another process:
//
//	go build -o /tmp/benchserver ./examples/benchserver
//	/tmp/benchserver -mode bare -addr 127.0.0.1:9100 &
//	wrk -t1 -c16 -d10s http://127.0.0.1:9100/users/42
//
// -mode agent adds the full agent as the foundation issue defines it for
// this benchmark: 100% sampling, one log line (the handler's; -access-log
// adds the agent's access line as a second), metrics, export to a local
// OTLP sink that discards;
// -mode policy adds a policy with a rule of every kind on top;
// -mode barelog is bare Gin whose route logs the same line as the agent's
// route, through slog's own JSON handler to the same discarding writer:
// the route as a service without the agent would run it;
// -mode reference is the hand-assembled comparison stack instead
// (otelgin, a Prometheus histogram, a slog JSON access line, a per-IP
// x/time/rate limiter; see reference.go); -mode sink is only an OTLP sink,
// for -sink.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent"
	"github.com/pilothouse/pilothouse/agent/wire"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		os.Exit(1)
	}
}

func run() error {
	mode := flag.String("mode", "bare", "bare, barelog, agent, policy, reference or sink")
	addr := flag.String("addr", "127.0.0.1:9100", "listen address")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile to this file on exit")
	accessLog := flag.Bool("access-log", false, "also log one access line per request (a second log line)")
	sample := flag.Float64("sample", 1, "agent: trace sampling ratio (to see what spans cost)")
	logLine := flag.Bool("log", true, "agent: the handler logs one line (to see what logging costs)")
	localLog := flag.String("local-log", "encode", "agent: where the local JSON log lines go: encode (encoded, then discarded), stderr (the agent's default) or off (export only)")
	work := flag.Duration("work", 0, "every mode: the handler computes for this long first, like a route that does real work")
	sinkURL := flag.String("sink", "", "agent: export to this control plane (e.g. a benchserver -mode sink) instead of a sink in this process")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 4096
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
		}()
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch *mode {
	case "bare":
		r.GET("/users/:id", func(c *gin.Context) { busy(*work); c.String(http.StatusOK, "hello user") })
	case "barelog":
		logger := slog.New(slog.NewJSONHandler(discard{}, nil))
		r.GET("/users/:id", func(c *gin.Context) {
			logger.Info("loading user", "user", c.Param("id"))
			busy(*work)
			c.String(http.StatusOK, "hello user")
		})
	case "sink":
		r.POST("/*path", func(c *gin.Context) { _, _ = io.Copy(io.Discard, c.Request.Body) })
	case "reference":
		controlPlane, err := sinkOrLocal(*sinkURL)
		if err != nil {
			return err
		}
		shutdown, err := useReferenceStack(r, controlPlane)
		if err != nil {
			return err
		}
		defer shutdown(context.Background())
		r.GET("/users/:id", func(c *gin.Context) { busy(*work); c.String(http.StatusOK, "hello user") })
	case "agent", "policy":
		controlPlane, err := sinkOrLocal(*sinkURL)
		if err != nil {
			return err
		}
		var local io.Writer
		switch *localLog {
		case "encode":
			local = discard{}
		case "stderr":
			local = os.Stderr
		case "off":
			local = io.Discard
		default:
			return fmt.Errorf("unknown -local-log %q (encode, stderr or off)", *localLog)
		}
		ag, err := agent.New("bench", agent.WithControlPlane(controlPlane),
			agent.WithSampleRatio(*sample), agent.WithLocalLog(local), agent.WithInstanceID("bench-1"),
			agent.WithAccessLog(*accessLog))
		if err != nil {
			return err
		}
		defer ag.Shutdown(context.Background())
		if *mode == "policy" {
			if err := ag.ApplyPolicy(policy()); err != nil {
				return err
			}
		}
		r.Use(ag.Middleware())
		r.GET("/users/:id", func(c *gin.Context) {
			if *logLine {
				agent.Logger(c).Info("loading user", "user", c.Param("id"))
			}
			busy(*work)
			c.String(http.StatusOK, "hello user")
		})
	default:
		return fmt.Errorf("unknown -mode %q (bare, barelog, agent, policy, reference or sink)", *mode)
	}
	srv := &http.Server{Addr: *addr, Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// busy computes for d on this goroutine (a hash chain, checking the clock
// every 256 steps), standing in for a handler's own work.
func busy(d time.Duration) {
	if d <= 0 {
		return
	}
	h := uint64(14695981039346656037)
	for start := time.Now(); time.Since(start) < d; {
		for range 256 {
			h = (h ^ 0xff) * 1099511628211
		}
	}
	busySink = h
}

// busySink keeps busy's result alive so the loop is not optimised away.
var busySink uint64

// sinkOrLocal returns url, or when it is empty the URL of an OTLP sink
// started in this process that reads and discards every export.
func sinkOrLocal(url string) (string, error) {
	if url != "" {
		return url, nil
	}
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go http.Serve(sink, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	return "http://" + sink.Addr().String(), nil
}

// discard is a local log writer that still makes the agent encode every
// line, as a real log destination would.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func policy() wire.Policy {
	return wire.Policy{
		Service: "bench",
		Degradations: []wire.DegradationRule{{RuleMeta: wire.RuleMeta{ID: "reports-off"},
			Match: wire.Match{Route: "/reports"}, Enabled: true, Fallback: wire.Response{Status: 200, Body: "{}"}}},
		RateLimits: []wire.RateLimitRule{
			{RuleMeta: wire.RuleMeta{ID: "users-global"}, Match: wire.Match{Route: "/users/:id"}, Rate: 1e9, Burst: 1e6},
			{RuleMeta: wire.RuleMeta{ID: "users-per-ip", Mode: wire.Shadow}, Match: wire.Match{Route: "/users/:id"}, Rate: 1e9, Burst: 1e6, Key: wire.KeyClientIP},
		},
		Breakers: []wire.BreakerRule{{RuleMeta: wire.RuleMeta{ID: "users-breaker"}, Match: &wire.Match{Route: "/users/:id"}, Threshold: 0.5}},
	}
}
