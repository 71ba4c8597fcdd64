package services

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent"
)

// NewPayments returns the payments service: slowish, and the most likely
// to fail.
func NewPayments(cfg Config) *gin.Engine {
	r := newEngine(&cfg)
	r.POST("/charge", func(c *gin.Context) {
		log := agent.Logger(c)
		var in struct {
			Amount float64 `json:"amount"`
		}
		if err := c.ShouldBindJSON(&in); err != nil || in.Amount < 0 {
			log.Warn("invalid charge", errAttr(err))
			c.JSON(http.StatusBadRequest, gin.H{"error": "amount must be a non-negative number"})
			return
		}
		cfg.sleep(c.Request.Context(), latency(20*time.Millisecond, 60*time.Millisecond))
		if cfg.fails() {
			log.Error("card processor timed out", "amount", in.Amount)
			c.JSON(http.StatusBadGateway, gin.H{"error": "card processor timeout"})
			return
		}
		log.Info("card charged", "amount", in.Amount)
		c.JSON(http.StatusOK, gin.H{"charged": in.Amount})
	})
	return r
}
