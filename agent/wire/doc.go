// Package wire is the contract between a Pilothouse agent and the control
// plane: endpoint paths, headers, the heartbeat document and the validation
// both sides share. It imports only the standard library so that a service
// embedding the agent stays small.
package wire
