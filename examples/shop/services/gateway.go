package services

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent"
)

// NewGateway returns the public entry point of the shop. It forwards to
// orders.
func NewGateway(cfg Config) *gin.Engine {
	r := newEngine(&cfg)
	cl := newClient(&cfg)

	r.GET("/api/orders/:id", func(c *gin.Context) {
		log := agent.Logger(c)
		var order map[string]any
		code, err := cl.call(c.Request.Context(), http.MethodGet, Orders, "/orders/"+c.Param("id"), nil, &order)
		if err != nil || code >= 500 {
			log.Error("order lookup failed", "order_id", c.Param("id"), "status", code, errAttr(err))
			c.JSON(http.StatusBadGateway, gin.H{"error": "orders unavailable"})
			return
		}
		if code == http.StatusNotFound {
			log.Warn("order not found", "order_id", c.Param("id"))
			c.JSON(http.StatusNotFound, gin.H{"error": "no such order"})
			return
		}
		log.Info("order served", "order_id", c.Param("id"))
		c.JSON(http.StatusOK, order)
	})

	r.POST("/api/orders", func(c *gin.Context) {
		log := agent.Logger(c)
		var in map[string]any
		if err := c.ShouldBindJSON(&in); err != nil {
			log.Warn("rejected order with a bad body", "err", err.Error())
			c.JSON(http.StatusBadRequest, gin.H{"error": "body must be JSON"})
			return
		}
		var out map[string]any
		code, err := cl.call(c.Request.Context(), http.MethodPost, Orders, "/orders", in, &out)
		if err != nil || code >= 500 {
			log.Error("order placement failed", "status", code, errAttr(err))
			c.JSON(http.StatusBadGateway, gin.H{"error": "could not place the order"})
			return
		}
		log.Info("order placed", "order_id", out["id"])
		c.JSON(code, out)
	})

	r.GET("/api/reports/daily", func(c *gin.Context) {
		log := agent.Logger(c)
		var out map[string]any
		code, err := cl.call(c.Request.Context(), http.MethodGet, Orders, "/reports/daily", nil, &out)
		if err != nil || code >= 500 {
			log.Error("daily report failed", "status", code, errAttr(err))
			c.JSON(http.StatusBadGateway, gin.H{"error": "report unavailable"})
			return
		}
		log.Info("daily report served")
		c.JSON(http.StatusOK, out)
	})
	return r
}

// errAttr is the log attribute "err" of err, or none (an empty Attr,
// which slog leaves out) when the failure was a status, not an error.
func errAttr(err error) slog.Attr {
	if err == nil {
		return slog.Attr{}
	}
	return slog.String("err", err.Error())
}
