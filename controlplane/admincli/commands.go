package admincli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
)

// subcommand is one `users` or `tokens` subcommand.
type subcommand func(ctx context.Context, s *stores, f *flags, pos []string, cfg Config) error

// Users runs `controlplane users` with args (after "users").
func Users(ctx context.Context, args []string, cfg Config) error {
	return dispatch(ctx, "users", usersUsage, map[string]subcommand{
		"list": listUsers, "add": addUser, "passwd": setPassword, "set-role": setRole,
		"disable": disableUser, "enable": enableUser, "delete": deleteUser,
	}, args, cfg)
}

// Tokens runs `controlplane tokens` with args (after "tokens").
func Tokens(ctx context.Context, args []string, cfg Config) error {
	return dispatch(ctx, "tokens", tokensUsage, map[string]subcommand{
		"list": listTokens, "create": createToken, "revoke": revokeToken,
	}, args, cfg)
}

// dispatch parses args for the named subcommand of command, opens the
// data directory's stores and runs it.
func dispatch(ctx context.Context, command, usage string, subs map[string]subcommand, args []string, cfg Config) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(cfg.Stderr, usage)
		if len(args) == 0 {
			return fmt.Errorf("%w: no subcommand given", ErrUsage)
		}
		return flag.ErrHelp
	}
	run, ok := subs[args[0]]
	if !ok {
		fmt.Fprint(cfg.Stderr, usage)
		return fmt.Errorf("%w: unknown subcommand %q", ErrUsage, args[0])
	}
	f := newFlags(command+" "+args[0], cfg.Stderr)
	pos, err := f.parse(args[1:])
	if err != nil {
		return err
	}
	s, err := open(*f.data, *f.consul, cfg)
	if err != nil {
		return err
	}
	return errors.Join(run(ctx, s, f, pos, cfg), s.close())
}

func listUsers(ctx context.Context, s *stores, _ *flags, pos []string, cfg Config) error {
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	users, err := s.auth.Users(ctx)
	if err != nil {
		return fmt.Errorf("admincli: list users: %w", err)
	}
	rows := make([][]string, 0, len(users))
	for _, u := range users {
		state := "enabled"
		if u.Disabled {
			state = "disabled"
		}
		rows = append(rows, []string{u.Name, string(u.Role), state, when(u.Created)})
	}
	return table(cfg.Stdout, "NAME\tROLE\tSTATE\tCREATED", rows)
}

// password returns the password from standard input with
// --password-stdin, else a generated one (and true).
func password(f *flags, cfg Config) (pw string, generated bool, err error) {
	if *f.passwordStdin {
		pw, err = readPassword(cfg.Stdin)
		return pw, false, err
	}
	return auth.GeneratePassword(), true, nil
}

func addUser(ctx context.Context, s *stores, f *flags, pos []string, cfg Config) error {
	if err := wantArgs(pos, 1, "a user name"); err != nil {
		return err
	}
	role, err := auth.ParseRole(*f.role)
	if err != nil {
		return fmt.Errorf("admincli: --role: %w", err)
	}
	pw, generated, err := password(f, cfg)
	if err != nil {
		return err
	}
	u, err := s.auth.CreateUser(ctx, pos[0], pw, role)
	if err != nil {
		return fmt.Errorf("admincli: add user: %w", err)
	}
	if err := s.record(ctx, audit.Event{Action: audit.ActionUserCreate, Target: u.Name, Detail: "role " + string(role)}); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Stdout, "added %s (%s)\n", u.Name, u.Role)
	if generated {
		fmt.Fprintf(cfg.Stdout, "password: %s\n(shown once; change it with: controlplane users passwd %s --password-stdin)\n", pw, u.Name)
	}
	return nil
}

// update applies ch to the named user and audits it as detail.
func update(ctx context.Context, s *stores, name string, ch auth.UserChange, detail string) (auth.User, error) {
	u, err := s.auth.UpdateUser(ctx, name, ch)
	if err != nil {
		return auth.User{}, fmt.Errorf("admincli: update user: %w", err)
	}
	return u, s.record(ctx, audit.Event{Action: audit.ActionUserUpdate, Target: u.Name, Detail: detail})
}

func setPassword(ctx context.Context, s *stores, f *flags, pos []string, cfg Config) error {
	if err := wantArgs(pos, 1, "a user name"); err != nil {
		return err
	}
	pw, generated, err := password(f, cfg)
	if err != nil {
		return err
	}
	u, err := update(ctx, s, pos[0], auth.UserChange{Password: &pw}, "password changed")
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Stdout, "password of %s changed; their sessions ended\n", u.Name)
	if generated {
		fmt.Fprintf(cfg.Stdout, "password: %s\n(shown once)\n", pw)
	}
	return nil
}

func setRole(ctx context.Context, s *stores, _ *flags, pos []string, cfg Config) error {
	if err := wantArgs(pos, 2, "a user name and a role"); err != nil {
		return err
	}
	role, err := auth.ParseRole(pos[1])
	if err != nil {
		return fmt.Errorf("admincli: %w", err)
	}
	u, err := update(ctx, s, pos[0], auth.UserChange{Role: &role}, "role "+string(role))
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Stdout, "%s is now %s\n", u.Name, u.Role)
	return nil
}

func setDisabled(ctx context.Context, s *stores, pos []string, cfg Config, disabled bool) error {
	if err := wantArgs(pos, 1, "a user name"); err != nil {
		return err
	}
	detail := "enabled"
	if disabled {
		detail = "disabled"
	}
	u, err := update(ctx, s, pos[0], auth.UserChange{Disabled: &disabled}, detail)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Stdout, "%s %s\n", u.Name, detail)
	return nil
}

func disableUser(ctx context.Context, s *stores, _ *flags, pos []string, cfg Config) error {
	return setDisabled(ctx, s, pos, cfg, true)
}

func enableUser(ctx context.Context, s *stores, _ *flags, pos []string, cfg Config) error {
	return setDisabled(ctx, s, pos, cfg, false)
}

func deleteUser(ctx context.Context, s *stores, _ *flags, pos []string, cfg Config) error {
	if err := wantArgs(pos, 1, "a user name"); err != nil {
		return err
	}
	if err := s.auth.DeleteUser(ctx, pos[0]); err != nil {
		return fmt.Errorf("admincli: delete user: %w", err)
	}
	if err := s.record(ctx, audit.Event{Action: audit.ActionUserDelete, Target: pos[0]}); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Stdout, "deleted %s\n", pos[0])
	return nil
}

func parseKind(s string) (auth.TokenKind, error) {
	switch k := auth.TokenKind(s); k {
	case auth.KindAPI, auth.KindAgent:
		return k, nil
	}
	return "", fmt.Errorf("%w: --kind %q: want api or agent", ErrUsage, s)
}

func listTokens(ctx context.Context, s *stores, f *flags, pos []string, cfg Config) error {
	if err := wantArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	kinds := []auth.TokenKind{auth.KindAPI, auth.KindAgent}
	if *f.kind != "" {
		k, err := parseKind(*f.kind)
		if err != nil {
			return err
		}
		kinds = kinds[:0]
		kinds = append(kinds, k)
	}
	var rows [][]string
	for _, k := range kinds {
		ts, err := s.auth.Tokens(ctx, k)
		if err != nil {
			return fmt.Errorf("admincli: list tokens: %w", err)
		}
		for _, t := range ts {
			scope := string(t.Role)
			if t.Kind == auth.KindAgent {
				scope = "any service"
				if len(t.Services) > 0 {
					scope = strings.Join(t.Services, ",")
				}
			}
			state := "active"
			if !t.Active() {
				state = "revoked " + when(t.Revoked)
			}
			rows = append(rows, []string{t.ID, string(t.Kind), t.Name, scope, state, when(t.LastUsed)})
		}
	}
	return table(cfg.Stdout, "ID\tKIND\tNAME\tROLE/SERVICES\tSTATE\tLAST USED", rows)
}

func createToken(ctx context.Context, s *stores, f *flags, pos []string, cfg Config) error {
	if err := wantArgs(pos, 1, "a token name"); err != nil {
		return err
	}
	kind, err := parseKind(*f.kind)
	if err != nil {
		return err
	}
	nt := auth.NewToken{Kind: kind, Name: pos[0], CreatedBy: s.actor}
	detail := string(kind) + " token"
	switch kind {
	case auth.KindAPI:
		if len(*f.services) > 0 {
			return fmt.Errorf("%w: --service is for agent tokens", ErrUsage)
		}
		if nt.Role, err = auth.ParseRole(*f.role); err != nil {
			return fmt.Errorf("admincli: --role: %w", err)
		}
		detail += ", role " + string(nt.Role)
	case auth.KindAgent:
		if *f.role != "" {
			return fmt.Errorf("%w: --role is for API tokens", ErrUsage)
		}
		nt.Services = *f.services
		if len(nt.Services) > 0 {
			detail += ", services " + strings.Join(nt.Services, ",")
		}
	}
	secret, t, err := s.auth.CreateToken(ctx, nt)
	if err != nil {
		return fmt.Errorf("admincli: create token: %w", err)
	}
	if err := s.record(ctx, audit.Event{Action: audit.ActionTokenCreate, Target: t.Name + " (" + t.ID + ")", Detail: detail}); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Stdout, "created %s (%s)\ntoken: %s\n(shown once; only its digest is stored)\n", t.Name, t.ID, secret)
	return nil
}

func revokeToken(ctx context.Context, s *stores, _ *flags, pos []string, cfg Config) error {
	if err := wantArgs(pos, 1, "a token ID"); err != nil {
		return err
	}
	t, err := s.auth.RevokeToken(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("admincli: revoke token: %w", err)
	}
	if err := s.record(ctx, audit.Event{Action: audit.ActionTokenRevoke, Target: t.Name + " (" + t.ID + ")", Detail: string(t.Kind) + " token"}); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Stdout, "revoked %s (%s)\n", t.Name, t.ID)
	return nil
}
