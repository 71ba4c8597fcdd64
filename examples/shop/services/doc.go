// Package services holds the demo shop: a gateway that calls orders, which
// calls payments and inventory. Every service embeds the Pilothouse agent,
// logs through agent.Logger, and has realistic latency, a few percent of
// errors and one slow endpoint, so the dashboard has something to show.
//
// The same constructors serve the in-process demo (`go run ./controlplane
// demo`) and the stand-alone binaries under examples/shop/.
package services
