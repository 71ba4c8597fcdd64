// Package agent is the Pilothouse agent: Gin middleware, an outbound
// http.RoundTripper and an slog logger that report traces, logs, metrics and
// heartbeats of one service instance to the Pilothouse control plane.
//
// A service embeds it in five lines:
//
//	ag, err := agent.New("orders", agent.WithAddress(":8081"))
//	if err != nil { ... }
//	defer ag.Shutdown(context.Background())
//	r := gin.New()
//	r.Use(ag.Middleware())
//
// Handlers log through agent.Logger(c) so that every line carries service,
// instance, request_id, trace_id and span_id, and call other services through
// an http.Client whose Transport is ag.Transport(nil) so that traceparent,
// baggage and X-Request-ID travel with the call.
//
// Nothing is exported on the request path: spans and log records go through
// bounded queues that drop (and count the drop) when full, and background
// goroutines batch them to the control plane over OTLP/HTTP. Metrics live in
// the agent's own Prometheus registry, exposed by MetricsHandler; the host's
// default registry and the OpenTelemetry globals are left alone.
//
// # Spans
//
// Client spans (Transport) and spans the host starts from TracerProvider
// are OpenTelemetry SDK spans. The middleware's server span is the
// agent's own trace.Span: the SDK's sampler decides it and
// trace.SpanFromContext returns it, so handlers add attributes and events
// and start children as usual, but its request attributes are plain fields
// encoded straight to OTLP, which costs a fraction of an SDK span. Span
// processors added with WithSpanProcessor receive it when it ends (OnEnd,
// as an SDK ReadOnlySpan), not when it starts.
//
// # Policy
//
// With a control plane configured the agent long-polls it for its
// service's policy (wire.PathPolicy), validates every version with the
// same wire.Policy.Validate the control plane uses, and swaps it in
// atomically; a rejected version is reported in the next heartbeat (the
// NACK) and the previous policy stays in force. ApplyPolicy does the same
// for a policy from elsewhere. Inbound requests meet the rules in the
// order degradation -> rate limit -> circuit breaker -> handler; calls
// through Transport meet routing -> breaker -> timeout -> call, and a host
// that names a service the control plane knows (http://orders/...) is
// sent to one of its live instances. Proxy forwards a gateway's requests
// the same way. Every decision is on the span (pilothouse.rule.id,
// pilothouse.action and an event), on the request's access log line
// (rule_id, action), in pilothouse_agent_policy_actions_total and in the
// heartbeat. Shadow rules only count and mark what they would have done.
// If the control plane goes away the last good policy stays in force;
// WithPolicyFile keeps it across restarts too.
//
// Configuration comes from options and, where an option is not given, from
// the environment: PILOTHOUSE_URL, PILOTHOUSE_TOKEN, PILOTHOUSE_ADDRESS
// (the host:port reported in heartbeats), and these standard
// OpenTelemetry variables:
//   - OTEL_SERVICE_NAME (when New is given "") and OTEL_RESOURCE_ATTRIBUTES;
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG;
//   - OTEL_EXPORTER_OTLP_ENDPOINT (both signals, plus /v1/traces or
//     /v1/logs), OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and
//     OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, with the _PROTOCOL variables
//     (which must not be grpc), and the _HEADERS, _TIMEOUT, _CERTIFICATE,
//     _CLIENT_CERTIFICATE and _CLIENT_KEY variables, general or per
//     signal (_TRACES_, _LOGS_; the specific one wins). Without an
//     endpoint variable a signal goes to the control plane;
//   - OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
//     OTEL_BSP_SCHEDULE_DELAY and the same three OTEL_BLRP_ ones for logs;
//   - OTEL_PROPAGATORS (tracecontext, baggage, both by default, or none);
//   - OTEL_SDK_DISABLED (span and log export off).
//
// A value New cannot use is an ErrInvalidConfig naming the variable.
//
// # Several control planes
//
// PILOTHOUSE_URL may list several control-plane replicas, comma-separated
// (or WithControlPlanes). The agent talks to one at a time; when it fails
// (a network error, a 5xx or a 429) the heartbeat, the policy long-poll
// and the span and log exporters all move to the next one, round robin,
// and stay there while it works. The policy in force is kept meanwhile,
// and the long-poll resumes on the new replica from the version the agent
// has. A batch the failing replica refused is sent once more, to the
// next one; if that fails too it is dropped and counted.
package agent
