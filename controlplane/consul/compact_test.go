package consul

import (
	"context"
	"testing"

	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
)

func TestCompactKeepsNewestAndHead(t *testing.T) {
	srv := consultest.Start(t)
	s := openStore(t, srv.Addr)
	ctx := context.Background()
	for v := range int64(5) {
		if _, err := s.Put(ctx, degrade("orders", v%2 == 0), v, alice); err != nil {
			t.Fatalf("put version %d: %v", v+1, err)
		}
	}
	if _, err := s.Put(ctx, degrade("payments", true), 0, alice); err != nil {
		t.Fatalf("put payments: %v", err)
	}
	tests := []struct {
		name         string
		keep         int
		wantDeleted  int
		wantVersions []int64
	}{
		{name: "keep three", keep: 3, wantDeleted: 2, wantVersions: []int64{5, 4, 3}},
		{name: "nothing more to delete", keep: 3, wantDeleted: 0, wantVersions: []int64{5, 4, 3}},
		{name: "zero keeps the head", keep: 0, wantDeleted: 2, wantVersions: []int64{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deleted, err := s.Compact(ctx, tt.keep)
			if err != nil || deleted != tt.wantDeleted {
				t.Fatalf("Compact(%d): got %d, %v, want %d deleted", tt.keep, deleted, err, tt.wantDeleted)
			}
			hist, err := s.History(ctx, "orders", 0)
			if err != nil {
				t.Fatalf("history: %v", err)
			}
			var got []int64
			for _, c := range hist {
				got = append(got, c.Version)
			}
			if len(got) != len(tt.wantVersions) {
				t.Fatalf("versions: got %v, want %v", got, tt.wantVersions)
			}
			for i := range got {
				if got[i] != tt.wantVersions[i] {
					t.Fatalf("versions: got %v, want %v", got, tt.wantVersions)
				}
			}
			if v := s.Current("orders").Version; v != 5 {
				t.Errorf("head: got version %d, want 5", v)
			}
		})
	}
	if hist, err := s.History(ctx, "payments", 0); err != nil || len(hist) != 1 {
		t.Errorf("payments history: got %d versions, %v, want its only version kept", len(hist), err)
	}
	// Writing on top of a compacted history still works.
	if _, err := s.Put(ctx, degrade("orders", true), 5, alice); err != nil {
		t.Errorf("put after compaction: %v", err)
	}
}
