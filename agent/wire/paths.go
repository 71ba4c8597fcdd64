package wire

import "time"

// Endpoint paths served by the control plane.
const (
	// PathTraces receives OTLP/HTTP trace exports (protobuf or JSON).
	PathTraces = "/v1/traces"
	// PathLogs receives OTLP/HTTP log exports (protobuf or JSON).
	PathLogs = "/v1/logs"
	// PathHeartbeat receives agent heartbeats as JSON.
	PathHeartbeat = "/api/v1/agents/heartbeat"
)

// Headers the agent reads and writes.
const (
	// HeaderRequestID carries the request ID across services.
	HeaderRequestID = "X-Request-ID"
	// HeaderAuthorization carries the agent token as "Bearer <token>".
	HeaderAuthorization = "Authorization"
)

// Environment variables read by the agent and the control plane.
const (
	EnvURL   = "PILOTHOUSE_URL"
	EnvToken = "PILOTHOUSE_TOKEN"
	// EnvAddress is the host:port other services reach an instance at
	// (for example the pod IP and port), when the agent is not given one.
	EnvAddress = "PILOTHOUSE_ADDRESS"
)

// Attribute keys Pilothouse puts on spans and log records.
const (
	AttrRequestID  = "request_id"
	AttrInstanceID = "service.instance.id"
)

// ConsulMetaInstance is the Consul service-meta key under which
// agent/consulreg stores the agent's instance ID (the one its heartbeats
// carry), so the control plane can match a Consul catalog entry to the
// instance's heartbeats when the Consul service ID differs.
const ConsulMetaInstance = "pilothouse_instance"

// MaxHeartbeatBytes caps the size of one heartbeat body.
const MaxHeartbeatBytes = 256 << 10

// PathPolicy is where agents long-poll for their service's policy:
// GET PathPolicy?service=NAME&instance=ID&version=N&wait=30s answers at
// once with a PolicyUpdate when the control plane's version differs from
// N, else after wait with 304 Not Modified.
const PathPolicy = "/api/v1/agents/policy"

// Long-poll bounds.
const (
	DefaultPolicyWait = 30 * time.Second
	MaxPolicyWait     = 2 * time.Minute
)
