// Package loki connects the control plane to Grafana Loki: a Forwarder
// pushes received log records to Loki with loki-client-go behind a
// bounded queue that drops, never blocks, when Loki is slow or down; a
// Client reads them back with LogQL query_range, by request ID within a
// window around the trace's start.
//
// Streams are labelled with service and level only (low cardinality);
// request_id, trace_id, span_id and instance travel as structured
// metadata, so LogQL selects them with a label filter:
//
//	{service=~".+"} | request_id="3f2a..."
//
// # Pushing
//
// loki-client-go (github.com/grafana/loki-client-go/loki) batches lines
// per stream, encodes them as a snappy-compressed protobuf push request,
// sends X-Scope-OrgID when a tenant is set, and retries network errors,
// 429 and 5xx with backoff; other answers are not retried. Its Handle
// blocks while it sends or retries, so the Forwarder feeds it from its
// own bounded queue on one goroutine: ingest only ever enqueues.
//
//	f, err := loki.NewForwarder(loki.Config{URL: "http://loki:3100", Registerer: reg})
//	...
//	logs = loki.Tee{Primary: logs, Forwarder: f} // store first, then queue for Loki
//	...
//	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//	defer cancel()
//	err = f.Close(ctx) // push what is queued, give up at ctx's deadline
//
// # Metrics
//
// The queue's drops (queue_full, closed) and pilothouse_loki_queue_batches
// are the Forwarder's own. The rest is taken from the client's counters,
// which it registers on Prometheus' default registry when imported and
// labels only with the Loki host (host:port of the URL); the Forwarder
// reads them from prometheus.DefaultGatherer, adds what they gained since
// it started to its own metrics every second and once more after the
// client stopped:
//
//   - pilothouse_loki_forwarded_records_total: promtail_sent_entries_total;
//   - pilothouse_loki_dropped_records_total{reason="push_failed"}:
//     promtail_dropped_entries_total (lines of a push the client gave up on);
//   - pilothouse_loki_pushes_total{result}: the count of
//     promtail_request_duration_seconds, "ok" for 2xx answers and "error"
//     for any other answer or none.
//
// They are exact with one Forwarder per Loki host:port in the process;
// two clients pushing to the same host:port at once share the library's
// counters, so each Forwarder would count the other's pushes too. While
// the Forwarder runs they trail the client by up to a second; once Close
// returned nil they are complete. The promtail_* counters stay on the
// default registry; the control plane does not serve that registry.
package loki
