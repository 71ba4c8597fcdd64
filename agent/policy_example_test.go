package agent_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent"
	"github.com/pilothouse/pilothouse/agent/wire"
)

func ExampleAgent_ApplyPolicy() {
	ag, err := agent.New("orders", agent.WithControlPlane(""), agent.WithLocalLog(io.Discard))
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = ag.Shutdown(context.Background()) }()
	r := gin.New()
	r.Use(ag.Middleware())
	r.GET("/reports/daily", func(c *gin.Context) { c.String(http.StatusOK, "the full report") })

	// Usually the control plane pushes policy; ApplyPolicy takes one from
	// anywhere, validated the same way.
	err = ag.ApplyPolicy(wire.Policy{Service: "orders", Version: 1, Degradations: []wire.DegradationRule{{
		RuleMeta: wire.RuleMeta{ID: "reports-off"},
		Match:    wire.Match{Route: "/reports/daily", Method: http.MethodGet},
		Enabled:  true,
		Fallback: wire.Response{Status: http.StatusOK, Body: `{"degraded":true}`},
	}}})
	if err != nil {
		log.Fatal(err)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/reports/daily", nil))
	fmt.Println(ag.PolicyVersion(), w.Code, w.Body.String())
	// Output: 1 200 {"degraded":true}
}

func ExampleAgent_Proxy() {
	ag, err := agent.New("gateway", agent.WithControlPlane(""), agent.WithLocalLog(io.Discard))
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = ag.Shutdown(context.Background()) }()
	r := gin.New()
	r.Use(ag.Middleware())
	// With a control plane, "orders" is resolved to a live instance; a
	// host:port works as well.
	r.Any("/api/orders/*rest", ag.Proxy("orders"))
}
