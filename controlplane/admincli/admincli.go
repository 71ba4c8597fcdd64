// Package admincli is the `controlplane users` and `controlplane tokens`
// commands: manage the dashboard's users and the API and agent tokens of
// one control plane from its host, on its data directory, with no session
// or token needed (whoever can read the data directory owns the control
// plane anyway). Every change is written to the audit log, with the
// operating-system user as the actor, like changes made in the console.
//
//	controlplane users list
//	controlplane users add alice --role operator        # prints a generated password once
//	controlplane users passwd alice --password-stdin < file
//	controlplane tokens create prometheus --kind api --role viewer
//	controlplane tokens create shop --kind agent --service orders --service payments
//	controlplane tokens revoke TOKEN_ID
//
// It can run while the control plane serves the same directory: the
// stores are SQLite databases in WAL mode.
//
// Control planes started with --consul share users, sessions and tokens
// through Consul: give the commands the same --consul address so the
// change is made there, for every replica. Without it a change touches
// only this replica's local copy, which the shared data overrides (the
// replica ignores it, and drops it at its next start).
package admincli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/consul"
)

// DefaultDataDir is where the stores are unless --data says otherwise;
// the same default as the serve command.
const DefaultDataDir = "./pilothouse-data"

// ErrUsage is returned for a missing or unknown subcommand or argument.
var ErrUsage = errors.New("admincli: usage")

const usersUsage = `usage: controlplane users <subcommand> [flags]

  list                          list users
  add NAME --role ROLE          add a user (viewer, operator or admin); the password is
                                generated and printed once unless --password-stdin
  passwd NAME                   set a new password (generated unless --password-stdin);
                                ends the user's sessions
  set-role NAME ROLE            change a user's role
  disable NAME | enable NAME    stop or allow a user's logins (disable ends sessions)
  delete NAME                   delete a user

flags:
  --data DIR                    the control plane's data directory (default ./pilothouse-data)
  --consul HOST:PORT            the control planes share users through this Consul: change them
                                there (token from CONSUL_HTTP_TOKEN)
  --password-stdin              read the password from the first line of standard input
`

const tokensUsage = `usage: controlplane tokens <subcommand> [flags]

  list [--kind api|agent]       list tokens (never their secrets)
  create NAME --kind api --role ROLE
                                create an API token with a role (viewer, operator, admin)
  create NAME --kind agent [--service S]...
                                create an agent token, limited to the services named
  revoke ID                     revoke a token

The secret of a new token is printed once; only its digest is stored.

flags:
  --data DIR                    the control plane's data directory (default ./pilothouse-data)
  --consul HOST:PORT            the control planes share tokens through this Consul: change them
                                there (token from CONSUL_HTTP_TOKEN)
`

// Config is what the commands need from their caller.
type Config struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Actor names who made a change in the audit log; empty means
	// "cli:" and the operating-system user.
	Actor string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// stores are the data directory's user and audit stores.
type stores struct {
	auth  *auth.Store
	audit *audit.Log
	actor string
}

func open(dir, consulAddr string, cfg Config) (*stores, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("admincli: data directory %q: %w", dir, err)
	}
	users, err := auth.Open(dir, auth.Config{Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("admincli: open users: %w", err)
	}
	if consulAddr != "" {
		if err := share(users, consulAddr); err != nil {
			users.Close()
			return nil, err
		}
	}
	log, err := audit.Open(dir, cfg.Now)
	if err != nil {
		users.Close()
		return nil, fmt.Errorf("admincli: open audit log: %w", err)
	}
	actor := cfg.Actor
	if actor == "" {
		actor = "cli"
		if u, err := user.Current(); err == nil {
			actor = "cli:" + u.Username
		}
	}
	return &stores{auth: users, audit: log, actor: actor}, nil
}

// consulTimeout bounds the first read of the shared users.
const consulTimeout = 10 * time.Second

// share makes users a replica of the users, sessions and tokens the
// control planes keep in Consul at addr.
func share(users *auth.Store, addr string) error {
	kv, err := consul.NewAuthKV(consul.AuthConfig{Address: addr})
	if err != nil {
		return fmt.Errorf("admincli: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), consulTimeout)
	defer cancel()
	if err := users.Share(ctx, kv, nil); err != nil {
		return fmt.Errorf("admincli: users shared through Consul at %s: %w", addr, err)
	}
	return nil
}

func (s *stores) close() error { return errors.Join(s.auth.Close(), s.audit.Close()) }

func (s *stores) record(ctx context.Context, e audit.Event) error {
	e.Actor, e.Remote = s.actor, "local"
	if _, err := s.audit.Record(ctx, e); err != nil {
		return fmt.Errorf("admincli: the change was made but not audited: %w", err)
	}
	return nil
}

// flags is the flag set every subcommand shares; positional arguments may
// come before or after the flags.
type flags struct {
	fs            *flag.FlagSet
	data          *string
	consul        *string
	passwordStdin *bool
	role          *string
	kind          *string
	services      *multi
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func newFlags(name string, stderr io.Writer) *flags {
	f := &flags{fs: flag.NewFlagSet(name, flag.ContinueOnError), services: &multi{}}
	f.fs.SetOutput(stderr)
	f.data = f.fs.String("data", DefaultDataDir, "the control plane's data directory")
	f.consul = f.fs.String("consul", "", "Consul HTTP address (host:port) through which the control planes share users and tokens")
	f.passwordStdin = f.fs.Bool("password-stdin", false, "read the password from standard input")
	f.role = f.fs.String("role", "", "role: viewer, operator or admin")
	f.kind = f.fs.String("kind", "", "token kind: api or agent")
	f.fs.Var(f.services, "service", "agent token: a service it may act for (repeat)")
	return f
}

// parse returns the positional arguments, wherever they stand.
func (f *flags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		args = f.fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func wantArgs(pos []string, n int, what string) error {
	if len(pos) != n {
		return fmt.Errorf("%w: want %s, got %q", ErrUsage, what, pos)
	}
	return nil
}

// readPassword reads one line from r.
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		return "", fmt.Errorf("%w: --password-stdin without standard input", ErrUsage)
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("admincli: read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("%w: empty password on standard input", ErrUsage)
	}
	return pw, nil
}

func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
