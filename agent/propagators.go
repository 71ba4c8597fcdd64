package agent

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/propagation"
)

// EnvPropagators chooses what context the agent reads from requests and
// writes to outbound calls: a comma-separated list of "tracecontext" (W3C
// traceparent and tracestate), "baggage" (W3C baggage), or "none". Unset,
// it is "tracecontext,baggage", the OpenTelemetry default. The request ID
// header is the agent's own and always travels.
const EnvPropagators = "OTEL_PROPAGATORS"

// baggageKey is the W3C baggage header in canonical form.
const baggageKey = "Baggage"

// propagators is the W3C context the agent propagates. The two formats
// are tested as flags rather than called through a composite propagator:
// a request that carries neither header costs two map lookups.
type propagators struct {
	traceContext bool
	baggage      bool
}

// defaultPropagators is what an unset OTEL_PROPAGATORS means.
var defaultPropagators = propagators{traceContext: true, baggage: true}

// extract returns ctx with the remote span context and baggage that h
// carries, as far as they are propagated.
func (p propagators) extract(ctx context.Context, h http.Header) context.Context {
	if p.traceContext && len(h[traceparentKey]) > 0 {
		ctx = propagation.TraceContext{}.Extract(ctx, headerCarrier(h))
	}
	if p.baggage && len(h[baggageKey]) > 0 {
		ctx = propagation.Baggage{}.Extract(ctx, headerCarrier(h))
	}
	return ctx
}

// inject writes ctx's span context and baggage to an outbound request's
// headers, as far as they are propagated.
func (p propagators) inject(ctx context.Context, h http.Header) {
	if p.traceContext {
		propagation.TraceContext{}.Inject(ctx, headerCarrier(h))
	}
	if p.baggage {
		propagation.Baggage{}.Inject(ctx, headerCarrier(h))
	}
}

// parsePropagators reads OTEL_PROPAGATORS. Formats the agent cannot speak
// (b3, jaeger, xray, ...) are refused rather than ignored: a service told
// to use them would otherwise lose its callers' traces without a word.
func parsePropagators(s string) (propagators, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return defaultPropagators, nil
	}
	var p propagators
	none := false
	for item := range strings.SplitSeq(s, ",") {
		switch name := strings.ToLower(strings.TrimSpace(item)); name {
		case "tracecontext":
			p.traceContext = true
		case "baggage":
			p.baggage = true
		case "none":
			none = true
		case "":
			return p, fmt.Errorf("%w: %s=%q has an empty entry", ErrInvalidConfig, EnvPropagators, s)
		default:
			return p, fmt.Errorf("%w: %s: %q is not supported by the agent (tracecontext, baggage or none)", ErrInvalidConfig, EnvPropagators, name)
		}
	}
	if none && (p.traceContext || p.baggage) {
		return p, fmt.Errorf("%w: %s=%q lists none with other propagators", ErrInvalidConfig, EnvPropagators, s)
	}
	return p, nil
}
