// Package failover_test runs agents against two real control-plane
// replicas that share their policies through a real Consul agent on
// loopback (controlplane/consul/consultest; skipped without a Consul
// binary, failing when CI=true):
//
//   - TestAgentFailsOverToReplicaB: an agent given both replicas' URLs
//     applies a policy written through A, keeps enforcing it when A is
//     shut down, then applies the next version written through B, and its
//     spans and logs arrive at B.
//   - TestConcurrentWritesOneWinner: the same version edited through A and
//     B at the same time gives one 200 and one 409 conflict over HTTP.
package failover_test
