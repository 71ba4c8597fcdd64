package agent

import (
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// AttrShadowAction is the span attribute (and log field "would") saying
// what a shadow rule would have done: limited, degraded or broken.
const AttrShadowAction = "pilothouse.shadow.action"

// policyEvent names the span event recorded for every rule decision.
const policyEvent = "pilothouse.policy"

// verdict is what the policy decided for one request; it lives in the
// request's state so that deciding allocates nothing.
type verdict struct {
	// rule and act name the decision shown on the span and log line; an
	// enforced action wins over a shadow one.
	rule   string
	act    action
	would  action // for act == actShadow
	marked bool

	reject     *cannedResponse
	retryAfter time.Duration

	admitted  [maxInboundBreakers]admission
	nAdmitted uint8
	// now is when the limits and breakers were asked; outcomes are
	// recorded at now plus the request's duration, saving a clock read.
	now time.Time
}

type admission struct {
	br  *breakerRule
	gen uint64
}

// mark records a decision on the span (event now, attributes at the end)
// and keeps it for the log line.
func (v *verdict) mark(span trace.Span, id string, act, would action) {
	// The first decision is kept, but an enforced one replaces a shadow one.
	if !v.marked || (v.act == actShadow && act != actShadow) {
		v.rule, v.act, v.would, v.marked = id, act, would, true
	}
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attribute.String(wire.AttrRuleID, id), attribute.String(wire.AttrAction, act.String())}
	if act == actShadow {
		attrs = append(attrs, attribute.String(AttrShadowAction, would.String()))
	}
	span.AddEvent(policyEvent, trace.WithAttributes(attrs...))
}

// decide runs the policy chain before the handler: degradation, rate
// limits, breakers. It reports whether the request is answered without the
// handler (st.verdict.reject is then set). With no rule for the route it
// returns after one map lookup, allocating nothing.
func (a *Agent) decide(c *gin.Context, st *requestState, method, route string) bool {
	cp := a.pol.current.Load()
	if cp == nil {
		return false
	}
	ir := cp.inbound(route)
	if ir == nil {
		return false
	}
	v := &st.verdict
	h := c.Request.Header
	for _, d := range ir.degradations {
		if !d.match.matches(method, h) {
			continue
		}
		if d.shadow {
			d.counts.add(actShadow)
			v.mark(&st.span, d.id, actShadow, actDegraded)
			continue
		}
		d.counts.add(actDegraded)
		v.mark(&st.span, d.id, actDegraded, 0)
		v.reject = &d.fallback
		return true
	}
	var now time.Time
	if len(ir.limits) > 0 || len(ir.breakers) > 0 {
		now = a.cfg.now()
		v.now = now
	}
	for _, l := range ir.limits {
		if !l.match.matches(method, h) {
			continue
		}
		var key string
		switch l.key {
		case keyClientIP:
			key = st.span.client
		case keyHeader:
			if vs := h[l.header]; len(vs) > 0 {
				key = vs[0]
			}
		}
		ok, wait := l.allow(key, now)
		switch {
		case ok:
			l.counts.add(actPassed)
		case l.shadow:
			l.counts.add(actShadow)
			v.mark(&st.span, l.id, actShadow, actLimited)
		default:
			l.counts.add(actLimited)
			v.mark(&st.span, l.id, actLimited, 0)
			v.reject, v.retryAfter = &l.reject, wait
			return true
		}
	}
	for _, br := range ir.breakers {
		if !br.match.matches(method, h) {
			continue
		}
		gen, ok := br.b.Allow(now)
		switch {
		case ok:
			br.counts.add(actPassed)
			if v.nAdmitted < maxInboundBreakers {
				v.admitted[v.nAdmitted] = admission{br, gen}
				v.nAdmitted++
			} else {
				br.b.Release(gen)
			}
		case br.shadow:
			br.counts.add(actShadow)
			v.mark(&st.span, br.id, actShadow, actBroken)
		default:
			br.counts.add(actBroken)
			v.mark(&st.span, br.id, actBroken, 0)
			v.reject = &br.fallback
			for i := range v.nAdmitted {
				v.admitted[i].br.b.Release(v.admitted[i].gen)
			}
			v.nAdmitted = 0
			return true
		}
	}
	return false
}

// answer writes the verdict's canned response in place of the handler.
func answer(c *gin.Context, v *verdict) {
	r := v.reject
	if v.act == actLimited {
		c.Writer.Header().Set("Retry-After", retryAfter(v.retryAfter))
	}
	c.Data(r.status, r.contentType, r.body)
	c.Abort()
}

// recordOutcome tells the breakers that admitted the request how it went.
func (a *Agent) recordOutcome(v *verdict, status int, d time.Duration) {
	if v.nAdmitted == 0 {
		return
	}
	now := v.now.Add(d)
	for i := range v.nAdmitted {
		ad := v.admitted[i]
		slow := ad.br.slowCall > 0 && d > ad.br.slowCall
		ad.br.b.Record(ad.gen, now, ad.br.failed(status), slow)
	}
	v.nAdmitted = 0
}
