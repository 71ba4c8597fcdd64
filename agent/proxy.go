package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/gin-gonic/gin"
)

// Proxy returns a Gin handler for gateways: it forwards the request, path
// and query as they are, to http://<target> through the agent's Transport,
// so routing to a live instance, the target's breaker and timeout and
// tracing all apply. target is a service name the control plane knows
// ("orders") or a host:port. A failed call answers 502 with a JSON error
// (504 when the target's timeout ran out).
func (a *Agent) Proxy(target string) gin.HandlerFunc {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: target})
			pr.SetXForwarded()
		},
		Transport: a.Transport(nil),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status, msg := http.StatusBadGateway, "upstream "+target+" unavailable"
			if r.Context().Err() == nil && isTimeout(err) {
				status, msg = http.StatusGatewayTimeout, "upstream "+target+" timed out"
			}
			LoggerFromContext(r.Context()).Warn("proxy call failed", "target", target, "err", err.Error())
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(jsonError(msg, "")))
		},
	}
	return func(c *gin.Context) { rp.ServeHTTP(proxyWriter{c.Writer}, c.Request) }
}

// proxyWriter hides gin's CloseNotify, which panics when the underlying
// writer lacks it; the request context already ends with the client.
// Flushing goes through Unwrap (http.ResponseController).
type proxyWriter struct{ w gin.ResponseWriter }

func (p proxyWriter) Header() http.Header         { return p.w.Header() }
func (p proxyWriter) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p proxyWriter) WriteHeader(code int)        { p.w.WriteHeader(code) }
func (p proxyWriter) Unwrap() http.ResponseWriter { return p.w }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
