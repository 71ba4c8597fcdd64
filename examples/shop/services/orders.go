package services

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/pilothouse/pilothouse/agent"
)

// NewOrders returns the orders service. It reads stock from inventory and
// charges through payments. GET /reports/daily is the slow endpoint.
func NewOrders(cfg Config) *gin.Engine {
	r := newEngine(&cfg)
	cl := newClient(&cfg)

	r.GET("/orders/:id", func(c *gin.Context) {
		ctx := c.Request.Context()
		log := agent.Logger(c)
		id, err := strconv.Atoi(c.Param("id"))
		if err != nil || id <= 0 {
			log.Warn("invalid order id", "order_id", c.Param("id"))
			c.JSON(http.StatusNotFound, gin.H{"error": "no such order"})
			return
		}
		cfg.sleep(ctx, latency(3*time.Millisecond, 12*time.Millisecond))
		sku := fmt.Sprintf("sku-%d", id%20)
		// Attributes of the request's span: the traces page finds them
		// with attr=order.id=42.
		trace.SpanFromContext(ctx).SetAttributes(attribute.Int("order.id", id), attribute.String("order.sku", sku))
		var stock map[string]any
		code, err := cl.call(ctx, http.MethodGet, Inventory, "/stock/"+sku, nil, &stock)
		if err != nil || code >= 500 {
			log.Error("inventory lookup failed", "sku", sku, "status", code, errAttr(err))
			c.JSON(http.StatusServiceUnavailable, gin.H{"error": "inventory unavailable"})
			return
		}
		if cfg.fails() {
			log.Error("order database timeout", "order_id", id)
			c.JSON(http.StatusInternalServerError, gin.H{"error": "database timeout"})
			return
		}
		log.Info("order loaded", "order_id", id, "sku", sku)
		c.JSON(http.StatusOK, gin.H{"id": id, "sku": sku, "stock": stock["available"], "status": "shipped"})
	})

	r.POST("/orders", func(c *gin.Context) {
		ctx := c.Request.Context()
		log := agent.Logger(c)
		var in struct {
			SKU      string  `json:"sku"`
			Quantity int     `json:"quantity"`
			Amount   float64 `json:"amount"`
		}
		if err := c.ShouldBindJSON(&in); err != nil || in.SKU == "" || in.Quantity <= 0 {
			log.Warn("invalid order", errAttr(err))
			c.JSON(http.StatusBadRequest, gin.H{"error": "sku and quantity are required"})
			return
		}
		span := trace.SpanFromContext(ctx)
		span.SetAttributes(attribute.String("order.sku", in.SKU), attribute.Int("order.quantity", in.Quantity))
		code, err := cl.call(ctx, http.MethodPost, Inventory, "/reserve", gin.H{"sku": in.SKU, "quantity": in.Quantity}, nil)
		if err != nil || code >= 500 {
			log.Error("stock reservation failed", "sku", in.SKU, "status", code, errAttr(err))
			c.JSON(http.StatusServiceUnavailable, gin.H{"error": "could not reserve stock"})
			return
		}
		code, err = cl.call(ctx, http.MethodPost, Payments, "/charge", gin.H{"amount": in.Amount}, nil)
		if err != nil || code >= 500 {
			log.Error("payment failed", "amount", in.Amount, "status", code, errAttr(err))
			c.JSON(http.StatusPaymentRequired, gin.H{"error": "payment failed"})
			return
		}
		id := rand.N(100000) + 1
		span.SetAttributes(attribute.Int("order.id", id))
		log.Info("order created", "order_id", id, "sku", in.SKU, "quantity", in.Quantity)
		c.JSON(http.StatusCreated, gin.H{"id": id, "status": "created"})
	})

	r.GET("/reports/daily", func(c *gin.Context) {
		log := agent.Logger(c)
		log.Info("building daily report")
		cfg.sleep(c.Request.Context(), latency(250*time.Millisecond, 700*time.Millisecond))
		log.Info("daily report built", "orders", 1200+rand.N(300))
		c.JSON(http.StatusOK, gin.H{"orders": 1200, "revenue": 48211.5})
	})
	return r
}
