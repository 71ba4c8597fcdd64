// Package tracebackend connects the control plane to a trace backend
// (an OpenTelemetry Collector, Jaeger or Tempo): a Forwarder tees the
// spans the control plane receives to any OTLP/HTTP endpoint (protobuf)
// behind a bounded queue that drops, never blocks, when the backend is
// slow or down; a Reader fetches one trace by ID from Jaeger's or Tempo's
// HTTP API (/api/traces/{id}) and maps it to store spans, through the same
// OTLP mapping ingest uses so both paths agree on services, routes,
// statuses and request IDs, and searches traces (Jaeger's /api/traces,
// which needs a service, or Tempo's /api/search) for a store.TraceFilter,
// answering store trace summaries.
package tracebackend
