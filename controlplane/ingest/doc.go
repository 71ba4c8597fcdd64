// Package ingest receives telemetry for the control plane: OTLP/HTTP
// traces (POST /v1/traces) and logs (POST /v1/logs) from any
// OpenTelemetry SDK or collector, and Pilothouse agent heartbeats
// (POST /api/v1/agents/heartbeat).
//
// OTLP bodies may be protobuf (application/x-protobuf) or OTLP/JSON
// (application/json: hex trace and span IDs, lowerCamelCase or snake_case
// keys, 64-bit integers as strings or numbers), optionally gzip-encoded.
// Bodies are capped before and after decompression, reading them is
// bounded in time, and attributes are capped per item (see the Max*
// constants), so one client cannot exhaust memory.
//
// Answers follow the OTLP/HTTP specification: 200 with an
// Export*ServiceResponse in the request's encoding, carrying
// partial_success when some items were rejected (bad IDs, no start time);
// 400 for a malformed body, 401 for a refused token, 413 for an oversized
// body, 415 for an unknown content type or encoding, 429 (store busy)
// and 503 (store failing) with Retry-After. Error bodies are a
// google.rpc.Status for protobuf requests and JSON
// {"code","message","error","field"} otherwise.
//
// Wiring it into a server:
//
//	in := ingest.New(ingest.Config{
//		Spans:        st, // *store.Store
//		Logs:         st,
//		Heartbeats:   reg, // *registry.Registry
//		Authenticate: ingest.BearerToken(os.Getenv(wire.EnvToken)),
//		Registerer:   promRegistry,
//	})
//	mux.Handle("POST "+wire.PathTraces, in.Traces())
//	mux.Handle("POST "+wire.PathLogs, in.Logs())
//	mux.Handle("POST "+wire.PathHeartbeat, in.Heartbeats())
package ingest
