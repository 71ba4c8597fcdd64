package services

import (
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent"
)

// NewInventory returns the inventory service: fast, rarely failing.
func NewInventory(cfg Config) *gin.Engine {
	r := newEngine(&cfg)
	r.GET("/stock/:sku", func(c *gin.Context) {
		log := agent.Logger(c)
		cfg.sleep(c.Request.Context(), latency(2*time.Millisecond, 8*time.Millisecond))
		if cfg.fails() {
			log.Error("stock cache miss storm", "sku", c.Param("sku"))
			c.JSON(http.StatusInternalServerError, gin.H{"error": "stock lookup failed"})
			return
		}
		n := rand.N(40)
		log.Debug("stock read", "sku", c.Param("sku"), "available", n)
		log.Info("stock checked", "sku", c.Param("sku"))
		c.JSON(http.StatusOK, gin.H{"sku": c.Param("sku"), "available": n})
	})
	r.POST("/reserve", func(c *gin.Context) {
		log := agent.Logger(c)
		var in struct {
			SKU      string `json:"sku"`
			Quantity int    `json:"quantity"`
		}
		if err := c.ShouldBindJSON(&in); err != nil || in.SKU == "" {
			log.Warn("invalid reservation", errAttr(err))
			c.JSON(http.StatusBadRequest, gin.H{"error": "sku is required"})
			return
		}
		cfg.sleep(c.Request.Context(), latency(4*time.Millisecond, 15*time.Millisecond))
		log.Info("stock reserved", "sku", in.SKU, "quantity", in.Quantity)
		c.JSON(http.StatusOK, gin.H{"reserved": in.Quantity})
	})
	return r
}
