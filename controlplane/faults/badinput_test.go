package faults_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/server"
)

// credentials a bad-input case is sent with.
type credentials int

const (
	asAgent           credentials = iota // no token: agents are open until an agent token exists
	asOperator                           // operator API token
	asAdmin                              // admin API token
	asSession                            // admin session cookie + CSRF token (dashboard forms)
	asNobody                             // public endpoints
	asSessionFormCSRF                    // admin session, CSRF token as the last form field
)

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBadInput sends every state-changing endpoint oversized, malformed
// and wrong-typed bodies: each gets a 4xx that says why (and names the
// field where one is at fault), and nothing is stored.
func TestBadInput(t *testing.T) {
	srv, base := startServer(t, server.Config{DataDir: t.TempDir()})
	ctx := context.Background()
	operator := apiToken(t, srv.Auth(), auth.RoleOperator)
	admin := apiToken(t, srv.Auth(), auth.RoleAdmin)
	adminUser, err := srv.Auth().User(ctx, auth.AdminName)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := srv.Auth().CreateSession(ctx, adminUser)
	if err != nil {
		t.Fatal(err)
	}
	tokensBefore, err := srv.Auth().Tokens(ctx, auth.KindAPI)
	if err != nil {
		t.Fatal(err)
	}

	big := func(n int) []byte { return bytes.Repeat([]byte("a"), n) }
	bigJSON := func(n int) []byte { return []byte(`{"name":"` + strings.Repeat("a", n) + `"}`) }
	bomb := gzipBytes(t, make([]byte, 32<<20)) // 32 MiB of zeros in ~32 KiB
	form := func(v url.Values) []byte { return []byte(v.Encode()) }
	bigForm := form(url.Values{"base": {"0"}, "id": {"x"}, "reason": {strings.Repeat("r", 1<<20)}})
	const ctForm = "application/x-www-form-urlencoded"
	policyPath := "/api/v1/policies/checkout"

	tests := []struct {
		name        string
		method      string
		path        string
		who         credentials
		contentType string
		encoding    string
		body        []byte
		wantStatus  int
		wantField   string // "" means no field is checked
		wantReason  string // a substring of the answer
	}{
		// OTLP traces and logs (protobuf and JSON, gzip).
		{name: "traces oversized", method: "POST", path: wire.PathTraces, contentType: protobufType, body: big(5 << 20), wantStatus: 413, wantReason: "too large"},
		{name: "traces gzip bomb", method: "POST", path: wire.PathTraces, contentType: protobufType, encoding: "gzip", body: bomb, wantStatus: 413, wantReason: "decompressed"},
		{name: "traces truncated gzip", method: "POST", path: wire.PathTraces, contentType: protobufType, encoding: "gzip", body: bomb[:100], wantStatus: 400, wantReason: "gzip"},
		{name: "traces malformed protobuf", method: "POST", path: wire.PathTraces, contentType: protobufType, body: []byte{0xff, 0xff, 0xff, 0xff}, wantStatus: 400, wantReason: "ingest"},
		{name: "traces malformed JSON", method: "POST", path: wire.PathTraces, contentType: "application/json", body: []byte(`{"resourceSpans":[`), wantStatus: 400, wantReason: "ingest"},
		{name: "traces wrong-typed JSON", method: "POST", path: wire.PathTraces, contentType: "application/json", body: []byte(`{"resourceSpans":"many"}`), wantStatus: 400, wantField: "resourceSpans"},
		{name: "traces wrong-typed span field", method: "POST", path: wire.PathTraces, contentType: "application/json", body: []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SIDEWAYS"}]}]}]}`), wantStatus: 400, wantField: "kind"},
		{name: "traces wrong content type", method: "POST", path: wire.PathTraces, contentType: "text/plain", body: []byte("hi"), wantStatus: 415, wantField: "Content-Type"},
		{name: "traces unknown encoding", method: "POST", path: wire.PathTraces, contentType: protobufType, encoding: "br", body: []byte("hi"), wantStatus: 415, wantReason: "encoding"},
		{name: "logs oversized", method: "POST", path: wire.PathLogs, contentType: "application/json", body: big(5 << 20), wantStatus: 413, wantReason: "too large"},
		{name: "logs gzip bomb", method: "POST", path: wire.PathLogs, contentType: "application/json", encoding: "gzip", body: bomb, wantStatus: 413, wantReason: "decompressed"},
		{name: "logs malformed JSON", method: "POST", path: wire.PathLogs, contentType: "application/json", body: []byte(`{"resourceLogs":[{`), wantStatus: 400, wantReason: "ingest"},
		{name: "logs wrong-typed JSON", method: "POST", path: wire.PathLogs, contentType: "application/json", body: []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":{}}]}]}]}`), wantStatus: 400, wantField: "timeUnixNano"},

		// Heartbeats.
		{name: "heartbeat oversized", method: "POST", path: wire.PathHeartbeat, contentType: "application/json", body: bigJSON(2 << 20), wantStatus: 413, wantReason: "too large"},
		{name: "heartbeat gzip bomb", method: "POST", path: wire.PathHeartbeat, contentType: "application/json", encoding: "gzip", body: bomb, wantStatus: 413, wantReason: "decompressed"},
		{name: "heartbeat malformed", method: "POST", path: wire.PathHeartbeat, contentType: "application/json", body: []byte(`{"service":`), wantStatus: 400, wantReason: "JSON"},
		{name: "heartbeat wrong-typed", method: "POST", path: wire.PathHeartbeat, contentType: "application/json", body: []byte(`{"service":42}`), wantStatus: 400, wantField: "service"},
		{name: "heartbeat missing fields", method: "POST", path: wire.PathHeartbeat, contentType: "application/json", body: []byte(`{}`), wantStatus: 400, wantField: "service"},

		// Policy API.
		{name: "policy oversized", method: "PUT", path: policyPath, who: asOperator, contentType: "application/json", body: bigJSON(2 << 20), wantStatus: 413, wantReason: "larger"},
		{name: "policy malformed", method: "PUT", path: policyPath, who: asOperator, contentType: "application/json", body: []byte(`{"service":"checkout",`), wantStatus: 400, wantReason: "JSON"},
		{name: "policy wrong-typed", method: "PUT", path: policyPath, who: asOperator, contentType: "application/json", body: []byte(`{"service":"checkout","version":"one"}`), wantStatus: 400, wantField: "version"},
		{name: "policy unknown field", method: "PUT", path: policyPath, who: asOperator, contentType: "application/json", body: []byte(`{"service":"checkout","version":0,"rate_limitz":[]}`), wantStatus: 400, wantField: "rate_limitz"},
		{name: "policy unknown rule field", method: "PUT", path: policyPath, who: asOperator, contentType: "application/json",
			body: []byte(`{"service":"checkout","version":0,"degradations":[{"id":"d","match":{"route":"/a"},"enabeld":true}]}`), wantStatus: 400, wantField: "enabeld"},
		{name: "policy invalid rule", method: "PUT", path: policyPath, who: asOperator, contentType: "application/json",
			body: []byte(`{"service":"checkout","version":0,"rate_limits":[{"id":"r","rate":-1,"burst":1}]}`), wantStatus: 400, wantField: "rate_limits[0]"},
		{name: "rollback oversized", method: "POST", path: policyPath + "/rollback", who: asOperator, contentType: "application/json", body: bigJSON(1 << 20), wantStatus: 413, wantReason: "large"},
		{name: "rollback malformed", method: "POST", path: policyPath + "/rollback", who: asOperator, contentType: "application/json", body: []byte(`{"to":`), wantStatus: 400, wantReason: "JSON"},
		{name: "rollback wrong-typed", method: "POST", path: policyPath + "/rollback", who: asOperator, contentType: "application/json", body: []byte(`{"to":"one"}`), wantStatus: 400, wantField: "to"},
		{name: "rollback unknown field", method: "POST", path: policyPath + "/rollback", who: asOperator, contentType: "application/json", body: []byte(`{"to":1,"bsae_version":0}`), wantStatus: 400, wantField: "bsae_version"},

		// Users and tokens API.
		{name: "create user oversized", method: "POST", path: "/api/v1/users", who: asAdmin, contentType: "application/json", body: bigJSON(1 << 20), wantStatus: 413, wantReason: "large"},
		{name: "create user malformed", method: "POST", path: "/api/v1/users", who: asAdmin, contentType: "application/json", body: []byte(`{"name":`), wantStatus: 400, wantReason: "JSON"},
		{name: "create user wrong-typed", method: "POST", path: "/api/v1/users", who: asAdmin, contentType: "application/json", body: []byte(`{"name":["bob"]}`), wantStatus: 400, wantField: "name"},
		{name: "create user unknown field", method: "POST", path: "/api/v1/users", who: asAdmin, contentType: "application/json", body: []byte(`{"name":"bob","rol":"admin"}`), wantStatus: 400, wantField: "rol"},
		{name: "update user wrong-typed", method: "PATCH", path: "/api/v1/users/" + auth.AdminName, who: asAdmin, contentType: "application/json", body: []byte(`{"disabled":"yes"}`), wantStatus: 400, wantField: "disabled"},
		{name: "create token oversized", method: "POST", path: "/api/v1/tokens", who: asAdmin, contentType: "application/json", body: bigJSON(1 << 20), wantStatus: 413, wantReason: "large"},
		{name: "create token wrong-typed", method: "POST", path: "/api/v1/tokens", who: asAdmin, contentType: "application/json", body: []byte(`{"kind":"api","name":"x","services":"all"}`), wantStatus: 400, wantField: "services"},
		{name: "create token unknown field", method: "POST", path: "/api/v1/tokens", who: asAdmin, contentType: "application/json", body: []byte(`{"kind":"api","name":"x","scope":"all"}`), wantStatus: 400, wantField: "scope"},

		// Forms: login, admin console, dashboard policy forms.
		{name: "login oversized", method: "POST", path: "/login", who: asNobody, contentType: ctForm, body: form(url.Values{"username": {"admin"}, "password": {strings.Repeat("p", 1<<20)}}), wantStatus: 413},
		{name: "login malformed form", method: "POST", path: "/login", who: asNobody, contentType: ctForm, body: []byte("username=%zz"), wantStatus: 400},
		{name: "admin form oversized", method: "POST", path: "/admin/users", who: asSession, contentType: ctForm, body: bigForm, wantStatus: 413},
		{name: "admin form malformed", method: "POST", path: "/admin/users", who: asSession, contentType: ctForm, body: []byte("name=%zz"), wantStatus: 400},
		{name: "rule form oversized", method: "POST", path: "/services/checkout/policy/degradations", who: asSession, contentType: ctForm, body: bigForm, wantStatus: 413},
		{name: "rule form malformed", method: "POST", path: "/services/checkout/policy/degradations", who: asSession, contentType: ctForm, body: []byte("base=%zz"), wantStatus: 400},
		{name: "rule form wrong-typed base", method: "POST", path: "/services/checkout/policy/degradations", who: asSession, contentType: ctForm, body: form(url.Values{"base": {"latest"}, "id": {"d"}}), wantStatus: 400},
		{name: "rule form oversized, CSRF token in the form", method: "POST", path: "/services/checkout/policy/degradations", who: asSessionFormCSRF, contentType: ctForm, body: bigForm, wantStatus: 413},
		{name: "toggle form wrong-typed base", method: "POST", path: "/services/checkout/policy/degradations/d/toggle", who: asSession, contentType: ctForm, body: form(url.Values{"base": {"latest"}}), wantStatus: 400},
	}
	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, base+tt.path, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tt.contentType)
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			switch tt.who {
			case asOperator:
				req.Header.Set("Authorization", "Bearer "+operator)
			case asAdmin:
				req.Header.Set("Authorization", "Bearer "+admin)
			case asSession:
				req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: sess.ID})
				req.Header.Set(auth.HeaderCSRF, sess.CSRF())
			case asSessionFormCSRF:
				req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: sess.ID})
				req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(tt.body), strings.NewReader("&"+auth.FormCSRF+"="+url.QueryEscape(sess.CSRF()))))
				req.ContentLength = -1
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d %q, want %d", resp.StatusCode, clip(body.String()), tt.wantStatus)
			}
			if tt.wantReason != "" && !strings.Contains(body.String(), tt.wantReason) {
				t.Errorf("answer %q: want the reason to mention %q", clip(body.String()), tt.wantReason)
			}
			if tt.wantField != "" {
				var e struct {
					Error string `json:"error"`
					Field string `json:"field"`
				}
				if err := json.Unmarshal(body.Bytes(), &e); err != nil {
					t.Fatalf("answer %q: not a JSON error: %v", clip(body.String()), err)
				}
				if e.Error == "" || !strings.Contains(e.Field, tt.wantField) {
					t.Errorf("answer %q: got field %q, want %q and a message", clip(body.String()), e.Field, tt.wantField)
				}
			}
		})
	}

	// Nothing was stored.
	if st := srv.Store().Stats(); st.Spans != 0 || st.Logs != 0 {
		t.Errorf("store: got %d spans and %d logs, want none", st.Spans, st.Logs)
	}
	if svcs := srv.Registry().Services(time.Now()); len(svcs) != 0 {
		t.Errorf("registry: got %d services, want none", len(svcs))
	}
	if v := srv.Policies().Current("checkout").Version; v != 0 {
		t.Errorf("policy of checkout: got version %d, want none", v)
	}
	if users, err := srv.Auth().Users(ctx); err != nil || len(users) != 1 {
		t.Errorf("users: got %d (%v), want only the admin", len(users), err)
	}
	if tokens, err := srv.Auth().Tokens(ctx, auth.KindAPI); err != nil || len(tokens) != len(tokensBefore) {
		t.Errorf("API tokens: got %d (%v), want %d", len(tokens), err, len(tokensBefore))
	}
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
