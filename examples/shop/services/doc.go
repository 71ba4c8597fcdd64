// Package services holds the demo shop: a gateway that calls orders, which
// calls payments and inventory. Every service embeds the Pilothouse agent,
// logs through agent.Logger, and has realistic latency, a few percent of
// errors and one slow endpoint, so the dashboard has something to show.
//
// The same constructors serve the in-process demo (`go run ./controlplane
// demo`) and the stand-alone binaries under examples/shop/. A binary given
// Consul's address (-consul, default $CONSUL_HTTP_ADDR) registers its
// instance there through agent/consulreg, with an HTTP check on /healthz,
// deregisters when it stops, and calls its peers by service name
// (http://orders/...), which its agent resolves to a live instance the
// control plane knows of; $SHOP_<NAME>_URL still overrides a peer's URL.
package services
