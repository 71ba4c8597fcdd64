package auth

import (
	"context"
	"net/http/httptest"
	"testing"
)

// BenchmarkAgentAuthenticate is the per-request cost agents pay on
// ingest, heartbeat and long-poll with a named agent token.
func BenchmarkAgentAuthenticate(b *testing.B) {
	s, err := Open(b.TempDir(), Config{BcryptCost: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	secret, _, err := s.CreateToken(context.Background(), NewToken{Kind: KindAgent, Name: "orders", Services: []string{"orders"}})
	if err != nil {
		b.Fatal(err)
	}
	a := NewAgentAuthenticator(s, "")
	r := httptest.NewRequest("POST", "/v1/traces", nil)
	r.Header.Set("Authorization", "Bearer "+secret)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}
