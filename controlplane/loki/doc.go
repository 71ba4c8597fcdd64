// Package loki connects the control plane to Grafana Loki: a Forwarder
// pushes received log records to Loki's push API (protobuf + snappy)
// behind a bounded queue that drops, never blocks, when Loki is slow or
// down; a Client reads them back with LogQL query_range, by request ID
// within a window around the trace's start.
//
// Streams are labelled with service and level only (low cardinality);
// request_id, trace_id, span_id and instance travel as structured
// metadata, so LogQL selects them with a label filter:
//
//	{service=~".+"} | request_id="3f2a..."
//
// The push client is written here over the documented push API rather
// than with loki-client-go: the pinned pseudo-version of that module is
// not served by the module proxy this project builds from, and the
// client's Handle blocks while Loki is down anyway.
package loki
