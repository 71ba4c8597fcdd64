// Package consul keeps policy versions and their audit records in Consul's
// KV store, so several control-plane replicas share one policy history.
//
// Layout, under Config.Prefix (default "pilothouse/policies/"):
//
//	<service>/current              the latest wire.Policy (JSON)
//	<service>/versions/<%020d>     one policy.Change per version (JSON):
//	                               the policy plus who, when, why and the diff
//
// A write is one Consul transaction: a check-and-set of <service>/current
// on the ModifyIndex it was read at, plus the new version record. Of two
// replicas writing at once, one wins and the other gets a
// *policy.ConflictError, exactly as with the embedded store.
//
// Each service asked about gets one watcher goroutine that holds a
// blocking query on <service>/current; when another replica writes a new
// version, the watcher wakes this replica's long-polling agents at once.
// There are no polling loops.
//
// RunAsLeader runs leader-only jobs (retention) on one replica at a time,
// holding a lock on a KV key through a Consul session.
package consul
