// Command payments runs the demo shop's payments service with the Pilothouse agent.
// Point it at a control plane with PILOTHOUSE_URL.
package main

import "github.com/pilothouse/pilothouse/examples/shop/services"

func main() { services.Main(services.Payments) }
