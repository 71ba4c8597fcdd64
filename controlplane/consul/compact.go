package consul

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Compact deletes the oldest version records of every service so that
// at most keep remain (keep < 1 counts as 1). The head (<prefix>_current/
// <service>) and the version record it points at are never deleted, so
// the current policy and its audit record always survive; older records,
// and with them their audit entries, go. It returns how many records it
// deleted.
//
// Compact changes state every replica shares: run it on one replica at a
// time (RunAsLeader). It is safe against concurrent writes, which only
// add versions newer than any it deletes.
func (s *PolicyStore) Compact(ctx context.Context, keep int) (int, error) {
	keep = max(keep, 1)
	deleted := 0
	var errs []error
	for _, service := range s.Services() {
		n, err := s.compactService(ctx, service, keep)
		deleted += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return deleted, errors.Join(errs...)
}

func (s *PolicyStore) compactService(ctx context.Context, service string, keep int) (int, error) {
	prefix := s.versionsPrefix(service)
	keys, _, err := s.client.KV().Keys(prefix, "", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("%w: versions of %s: %w", ErrConsul, service, err)
	}
	if len(keys) <= keep {
		return 0, nil
	}
	// Zero-padded version numbers sort as numbers: the oldest are first.
	sort.Strings(keys)
	head := s.Current(service).Version
	old := make([]string, 0, len(keys)-keep)
	for _, k := range keys[:len(keys)-keep] {
		v, err := strconv.ParseInt(strings.TrimPrefix(k, prefix), 10, 64)
		if err != nil || v >= head {
			// Not a version record, or not older than the head.
			continue
		}
		old = append(old, k)
	}
	deleted := 0
	for chunk := range slices.Chunk(old, maxTxnOps) {
		ops := make(api.TxnOps, 0, len(chunk))
		for _, k := range chunk {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: k}})
		}
		ok, resp, _, err := s.client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return deleted, fmt.Errorf("%w: compact %s: %w", ErrConsul, service, err)
		}
		if !ok {
			return deleted, fmt.Errorf("%w: compact %s rolled back: %s", ErrConsul, service, txnErrors(resp))
		}
		deleted += len(chunk)
	}
	return deleted, nil
}
