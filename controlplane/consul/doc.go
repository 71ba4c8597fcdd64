// Package consul keeps policy versions and their audit records in Consul's
// KV store, so several control-plane replicas share one policy history.
//
// Layout, under Config.Prefix (default "pilothouse/policies/"):
//
//	_current/<service>             the latest wire.Policy (JSON): the head
//	<service>/versions/<%020d>     one policy.Change per version (JSON):
//	                               the policy plus who, when, why and the diff
//
// A write is one Consul transaction: a check-and-set of the head on the
// ModifyIndex it was read at, plus the new version record. Of two
// replicas writing at once, one wins and the other gets a
// *policy.ConflictError, exactly as with the embedded store.
//
// Each PolicyStore holds one blocking query on the heads (one connection
// to Consul however many services there are; "_current" cannot clash with
// a service name, which starts with a letter or digit). When another
// replica writes a new version, the query answers and this replica wakes
// its long-polling agents at once. There are no polling loops.
//
// Catalog mirrors Consul's catalog and health checks the same way, for
// the instance list; MergeInstances folds it into the heartbeat registry's
// and InstanceView serves the merged services to the API and dashboard.
//
// AuthKV keeps users, sessions and API/agent tokens under
// DefaultAuthPrefix for auth.Store.Share, one key per row (digests and
// bcrypt hashes, never a secret): every change is one transaction with
// check-and-set, and each replica's store applies the others' changes
// through one blocking query on the prefix.
//
// RunAsLeader runs leader-only jobs on one replica at a time, holding a
// lock on a KV key through a Consul session; the control plane's leader
// runs PolicyStore.Compact, which trims the shared version history.
package consul
