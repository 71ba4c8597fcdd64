package main

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/time/rate"
)

// useReferenceStack installs the hand-assembled stack the foundation issue
// compares the agent with: otelgin (100% sampling, batched OTLP/HTTP export
// to controlPlane's /v1/traces), a Prometheus duration histogram by method,
// route and status, one slog JSON access log line per request (to a
// discarding writer, like the agent's local log in this benchmark), and a
// per-client-IP x/time/rate limiter that lets everything through. It
// returns the tracer provider's shutdown.
func useReferenceStack(r *gin.Engine, controlPlane string) (func(context.Context) error, error) {
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(controlPlane+"/v1/traces"))
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	r.Use(otelgin.Middleware("bench", otelgin.WithTracerProvider(tp), otelgin.WithPropagators(propagation.TraceContext{})))

	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_server_request_duration_seconds",
		Help:    "Duration of HTTP server requests.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"method", "route", "status_code"})
	prometheus.NewRegistry().MustRegister(duration)
	log := slog.New(slog.NewJSONHandler(discard{}, nil))
	var (
		mu       sync.Mutex
		limiters = map[string]*rate.Limiter{}
	)
	r.Use(func(c *gin.Context) {
		start := time.Now()
		mu.Lock()
		l, ok := limiters[c.ClientIP()]
		if !ok {
			l = rate.NewLimiter(1e9, 1e6)
			limiters[c.ClientIP()] = l
		}
		mu.Unlock()
		if !l.Allow() {
			c.AbortWithStatus(http.StatusTooManyRequests)
			return
		}
		c.Next()
		d := time.Since(start)
		status := c.Writer.Status()
		duration.WithLabelValues(c.Request.Method, c.FullPath(), strconv.Itoa(status)).Observe(d.Seconds())
		log.Info("request", "method", c.Request.Method, "route", c.FullPath(), "status", status,
			"duration", d, "client_ip", c.ClientIP())
	})
	return tp.Shutdown, nil
}
