package admincli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/consul"
	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
)

// cli runs one command line against dir and returns its output.
func cli(t *testing.T, dir, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cfg := Config{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Actor: "cli:test"}
	args = append(args, "--data", dir)
	var err error
	switch args[0] {
	case "users":
		err = Users(context.Background(), args[1:], cfg)
	case "tokens":
		err = Tokens(context.Background(), args[1:], cfg)
	}
	return out.String() + errOut.String(), err
}

func mustCLI(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	out, err := cli(t, dir, stdin, args...)
	if err != nil {
		t.Fatalf("%v: got error %v, want nil (output %q)", args, err, out)
	}
	return out
}

func TestUsersLifecycle(t *testing.T) {
	dir := t.TempDir()
	out := mustCLI(t, dir, "", "users", "add", "alice", "--role", "operator")
	pw := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out)
	if pw == nil {
		t.Fatalf("add output: got %q, want a generated password", out)
	}
	store, err := auth.Open(dir, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Authenticate(context.Background(), "alice", pw[1]); err != nil {
		t.Errorf("log in with the printed password: got %v, want nil", err)
	}
	store.Close()

	mustCLI(t, dir, "a new long password\n", "users", "passwd", "alice", "--password-stdin")
	mustCLI(t, dir, "", "users", "set-role", "alice", "viewer")
	mustCLI(t, dir, "", "users", "disable", "alice")
	list := mustCLI(t, dir, "", "users", "list")
	if !regexp.MustCompile(`alice\s+viewer\s+disabled`).MatchString(list) {
		t.Errorf("list: got %q, want alice viewer disabled", list)
	}
	mustCLI(t, dir, "", "users", "enable", "alice")

	store, err = auth.Open(dir, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Authenticate(context.Background(), "alice", "a new long password"); err != nil {
		t.Errorf("log in with the new password: got %v, want nil", err)
	}
	store.Close()
	mustCLI(t, dir, "", "users", "delete", "alice")

	log, err := audit.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	events, err := log.List(context.Background(), audit.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		if e.Actor != "cli:test" || e.Target != "alice" {
			t.Errorf("audit event: got actor %q target %q, want cli:test and alice", e.Actor, e.Target)
		}
		actions = append(actions, e.Action)
	}
	want := []string{audit.ActionUserDelete, audit.ActionUserUpdate, audit.ActionUserUpdate, audit.ActionUserUpdate,
		audit.ActionUserUpdate, audit.ActionUserCreate} // newest first
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Errorf("audit actions: got %v, want %v", actions, want)
	}
}

func TestTokensLifecycle(t *testing.T) {
	dir := t.TempDir()
	out := mustCLI(t, dir, "", "tokens", "create", "prometheus", "--kind", "api", "--role", "viewer")
	secret := regexp.MustCompile(`token: (pha_\S+)`).FindStringSubmatch(out)
	id := regexp.MustCompile(`created prometheus \((\S+)\)`).FindStringSubmatch(out)
	if secret == nil || id == nil {
		t.Fatalf("create output: got %q, want the ID and a pha_ secret", out)
	}
	out = mustCLI(t, dir, "", "tokens", "create", "shop", "--kind", "agent", "--service", "orders", "--service", "payments")
	if !strings.Contains(out, "token: phg_") {
		t.Errorf("agent token output: got %q, want a phg_ secret", out)
	}
	list := mustCLI(t, dir, "", "tokens", "list")
	if !strings.Contains(list, "orders,payments") || !regexp.MustCompile(`prometheus\s+viewer\s+active`).MatchString(list) {
		t.Errorf("list: got %q, want both tokens with their scope", list)
	}
	if strings.Contains(list, secret[1]) {
		t.Errorf("list shows a secret: %q", list)
	}

	store, err := auth.Open(dir, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.LookupToken(context.Background(), auth.KindAPI, secret[1]); err != nil {
		t.Errorf("look up the printed secret: got %v, want nil", err)
	}
	store.Close()

	mustCLI(t, dir, "", "tokens", "revoke", id[1])
	store, err = auth.Open(dir, auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.LookupToken(context.Background(), auth.KindAPI, secret[1]); !errors.Is(err, auth.ErrRevoked) {
		t.Errorf("look up after revoke: got %v, want ErrRevoked", err)
	}
}

func TestBadInvocations(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr error
		want    string
	}{
		{name: "no subcommand", args: []string{"users"}, wantErr: ErrUsage},
		{name: "unknown subcommand", args: []string{"tokens", "mint", "x"}, wantErr: ErrUsage},
		{name: "add without role", args: []string{"users", "add", "bob"}, wantErr: auth.ErrInvalid},
		{name: "add with bad role", args: []string{"users", "add", "bob", "--role", "root"}, wantErr: auth.ErrInvalid},
		{name: "add without name", args: []string{"users", "add", "--role", "viewer"}, wantErr: ErrUsage},
		{name: "passwd unknown user", args: []string{"users", "passwd", "nobody"}, wantErr: auth.ErrNotFound},
		{name: "empty password on stdin", args: []string{"users", "add", "bob", "--role", "viewer", "--password-stdin"}, wantErr: ErrUsage},
		{name: "token without kind", args: []string{"tokens", "create", "x"}, wantErr: ErrUsage},
		{name: "agent token with role", args: []string{"tokens", "create", "x", "--kind", "agent", "--role", "admin"}, wantErr: ErrUsage},
		{name: "api token with service", args: []string{"tokens", "create", "x", "--kind", "api", "--role", "viewer", "--service", "a"}, wantErr: ErrUsage},
		{name: "revoke unknown", args: []string{"tokens", "revoke", "nope"}, wantErr: auth.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := cli(t, dir, "", tt.args...)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want %v (output %q)", err, tt.wantErr, out)
			}
		})
	}
	if _, err := cli(t, dir+"/missing", "", "users", "list"); err == nil {
		t.Errorf("missing data directory: got nil, want an error")
	}
}

// TestConsulFlag: with --consul the commands change the users and tokens
// every replica shares, not only the local copy.
func TestConsulFlag(t *testing.T) {
	ctx := context.Background()
	c := consultest.Start(t)
	replica, err := auth.Open(t.TempDir(), auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	kv, err := consul.NewAuthKV(consul.AuthConfig{Address: c.Addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Share(ctx, kv, nil); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	out := mustCLI(t, dir, "", "users", "add", "alice", "--role", "operator", "--consul", c.Addr)
	pw := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out)
	if pw == nil {
		t.Fatalf("add output: got %q, want a generated password", out)
	}
	await.Until(t, 20*time.Second, "alice, added by the CLI, signs in on the replica", func() (bool, string) {
		_, err := replica.Authenticate(ctx, "alice", pw[1])
		return err == nil, fmt.Sprintf("Authenticate: %v", err)
	})
	out = mustCLI(t, dir, "", "tokens", "create", "shop", "--kind", "agent", "--service", "orders", "--consul", c.Addr)
	secret := regexp.MustCompile(`phg_\S+`).FindString(out)
	id := regexp.MustCompile(`\(([0-9a-f]{16})\)`).FindStringSubmatch(out)
	if secret == "" || id == nil {
		t.Fatalf("create output: got %q, want a secret and an ID", out)
	}
	mustCLI(t, dir, "", "tokens", "revoke", id[1], "--consul", c.Addr)
	await.Until(t, 20*time.Second, "the token revoked by the CLI is refused by the replica", func() (bool, string) {
		_, err := replica.LookupToken(ctx, auth.KindAgent, secret)
		return errors.Is(err, auth.ErrRevoked), fmt.Sprintf("LookupToken: %v", err)
	})
}
