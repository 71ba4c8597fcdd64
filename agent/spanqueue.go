package agent

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pilothouse/pilothouse/agent/internal/batch"
)

// queuedSpan is one ended span waiting for export: an SDK span (client
// spans, the host's own) or the middleware's server span.
type queuedSpan struct {
	sdk sdktrace.ReadOnlySpan
	own *serverSpan
}

func (q queuedSpan) scope() instrumentation.Scope {
	if q.own != nil {
		return instrumentation.Scope{Name: instrumentationName}
	}
	return q.sdk.InstrumentationScope()
}

// sdkSpans wraps SDK spans for the exporter.
func sdkSpans(spans []sdktrace.ReadOnlySpan) []queuedSpan {
	out := make([]queuedSpan, len(spans))
	for i, s := range spans {
		out[i].sdk = s
	}
	return out
}

// spanSender sends one batch of spans; the OTLP exporter is one.
type spanSender interface {
	sendSpans(ctx context.Context, spans []queuedSpan) error
	Shutdown(ctx context.Context) error
}

// spanQueue is the agent's span processor: a bounded, non-blocking queue in
// front of an OTLP exporter. Server spans are offered to it directly.
type spanQueue struct {
	q   *batch.Queue[queuedSpan]
	exp spanSender
}

var _ sdktrace.SpanProcessor = (*spanQueue)(nil)

func newSpanQueue(exp spanSender, s batch.Settings) *spanQueue {
	return &spanQueue{exp: exp, q: batch.New(s, batch.ExportFunc[queuedSpan](exp.sendSpans))}
}

func (s *spanQueue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (s *spanQueue) OnEnd(sp sdktrace.ReadOnlySpan) {
	if sp.SpanContext().IsSampled() {
		s.q.Offer(queuedSpan{sdk: sp})
	}
}

func (s *spanQueue) ForceFlush(ctx context.Context) error { return s.q.Flush(ctx) }

func (s *spanQueue) Shutdown(ctx context.Context) error {
	return errors.Join(s.q.Close(ctx), s.exp.Shutdown(ctx))
}
