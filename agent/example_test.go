package agent_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent"
)

func ExampleNew() {
	// With no control plane configured (PILOTHOUSE_URL unset) the agent
	// still traces, logs locally and serves metrics; it exports nothing.
	ag, err := agent.New("orders",
		agent.WithControlPlane(""),
		agent.WithAddress("127.0.0.1:8081"),
		agent.WithVersion("v1.4.2"),
		agent.WithLocalLog(io.Discard),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ag.Shutdown(ctx)
	}()
	ag.AddCheck("db", func(ctx context.Context) error { return nil })
	fmt.Println(ag.InstanceID() != "")
	// Output: true
}

func ExampleAgent_Middleware() {
	ag, err := agent.New("orders", agent.WithControlPlane(""), agent.WithLocalLog(io.Discard))
	if err != nil {
		log.Fatal(err)
	}
	defer ag.Shutdown(context.Background())

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(ag.Middleware())
	r.GET("/orders/:id", func(c *gin.Context) { c.String(http.StatusOK, "order "+c.Param("id")) })
	r.GET("/metrics", gin.WrapH(ag.MetricsHandler()))

	req := httptest.NewRequest(http.MethodGet, "/orders/7", nil)
	req.Header.Set("X-Request-ID", "req-123")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	fmt.Println(w.Code, w.Body.String(), w.Header().Get("X-Request-ID"))
	// Output: 200 order 7 req-123
}

func ExampleLogger() {
	ag, err := agent.New("orders", agent.WithControlPlane(""), agent.WithLocalLog(io.Discard))
	if err != nil {
		log.Fatal(err)
	}
	defer ag.Shutdown(context.Background())

	// Outbound calls made with the request context carry traceparent and
	// X-Request-ID.
	client := &http.Client{Transport: ag.Transport(nil), Timeout: 2 * time.Second}
	_ = client

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(ag.Middleware())
	r.GET("/orders/:id", func(c *gin.Context) {
		// Every line carries service, instance, request_id, trace_id and span_id.
		agent.Logger(c).Info("loading order", "order_id", c.Param("id"))
		c.Status(http.StatusNoContent)
	})
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/orders/7", nil))
	fmt.Println(w.Code)
	// Output: 204
}
