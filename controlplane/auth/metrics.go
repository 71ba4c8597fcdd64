package auth

import "github.com/prometheus/client_golang/prometheus"

// Failure kinds counted in pilothouse_auth_failures_total{kind}.
const (
	FailLogin          = "login"           // wrong user name or password
	FailLoginThrottled = "login_throttled" // sign-in refused by the rate limit
	FailSession        = "session"         // missing, expired or unknown session
	FailToken          = "token"           // unknown or revoked API token
	FailAgent          = "agent"           // wrong agent token or service
	FailCSRF           = "csrf"            // missing or wrong CSRF token
	FailForbidden      = "forbidden"       // authenticated, role too low
)

// Metrics counts authentication failures. A nil *Metrics counts nothing.
type Metrics struct {
	failures *prometheus.CounterVec
}

// NewMetrics registers pilothouse_auth_failures_total on reg (nil: not
// registered, still counted).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{failures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pilothouse_auth_failures_total",
		Help: "Requests refused for authentication or authorization, by kind.",
	}, []string{"kind"})}
	for _, k := range []string{FailLogin, FailLoginThrottled, FailSession, FailToken, FailAgent, FailCSRF, FailForbidden} {
		m.failures.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(m.failures)
	}
	return m
}

// Fail counts one failure of kind.
func (m *Metrics) Fail(kind string) {
	if m != nil {
		m.failures.WithLabelValues(kind).Inc()
	}
}
