// Package policycli is the `controlplane policy` command: read a service's
// policy, show how a file differs from it, and apply the file, so that
// policy can live in git next to the code.
//
//	controlplane policy get orders > orders.yaml
//	controlplane policy diff -f orders.yaml
//	controlplane policy apply -f orders.yaml --reason "tighten limits"
package policycli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/policy"
)

// Environment variables read by the command.
const (
	EnvAPIToken = "PILOTHOUSE_API_TOKEN"
)

const usage = `usage: controlplane policy <get SERVICE | diff -f FILE | apply -f FILE> [flags]

  get SERVICE     print the service's current policy as YAML (-o json for JSON)
  diff -f FILE    show how FILE differs from the current policy
  apply -f FILE   store FILE as the service's next policy version

flags (every subcommand):
  --url URL       control plane (default $PILOTHOUSE_URL or http://127.0.0.1:7070)
  --token TOKEN   API token (default $PILOTHOUSE_API_TOKEN)
`

// Run executes the command with args (after "policy").
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("policy: no subcommand given")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("policy "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	baseURL := fs.String("url", envOr(wire.EnvURL, "http://127.0.0.1:7070"), "control plane URL")
	token := fs.String("token", os.Getenv(EnvAPIToken), "API token")
	file := fs.String("f", "", "policy file (YAML or JSON)")
	output := fs.String("o", "yaml", "get: output format, yaml or json")
	reason := fs.String("reason", "", "apply: why (kept in the audit log)")
	base := fs.Int64("base", -1, "apply: the version the file was based on (default: the current one)")
	// Accept the service name before or after the flags.
	var positional []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) > 0 {
			positional = append(positional, args[0])
			args = args[1:]
		}
	}
	c := &client{base: strings.TrimRight(*baseURL, "/"), token: *token, http: &http.Client{Timeout: 30 * time.Second}}
	switch sub {
	case "get":
		if len(positional) != 1 {
			return errors.New("policy get: name one service")
		}
		p, err := c.get(ctx, positional[0])
		if err != nil {
			return err
		}
		return write(stdout, p, *output)
	case "diff", "apply":
		if *file == "" {
			return fmt.Errorf("policy %s: -f FILE is required", sub)
		}
		want, err := ReadFile(*file)
		if err != nil {
			return err
		}
		cur, err := c.get(ctx, want.Service)
		if err != nil {
			return err
		}
		if sub == "diff" {
			fmt.Fprint(stdout, diffRules(cur, want))
			return nil
		}
		if *base >= 0 {
			want.Version = *base
		} else {
			want.Version = cur.Version
		}
		stored, err := c.put(ctx, want, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied %s: version %d\n", stored.Service, stored.Version)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("policy: unknown subcommand %q", sub)
}

// ReadFile reads a policy from YAML or JSON and validates it with the same
// rules the control plane and the agents apply. Unknown fields are errors.
func ReadFile(path string) (wire.Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return wire.Policy{}, fmt.Errorf("policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return p, fmt.Errorf("policy: %s: %w", path, err)
	}
	return p, nil
}

// Parse decodes a YAML (or JSON, a subset of YAML) policy document.
func Parse(data []byte) (wire.Policy, error) {
	if len(data) > wire.MaxPolicyBytes {
		return wire.Policy{}, wire.ErrTooLarge
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return wire.Policy{}, wire.FieldError{Message: "not valid YAML: " + err.Error()}
	}
	if _, ok := doc.(map[string]any); !ok {
		return wire.Policy{}, wire.FieldError{Message: "a policy must be a mapping with a service key"}
	}
	asJSON, err := json.Marshal(doc)
	if err != nil {
		return wire.Policy{}, wire.FieldError{Message: "cannot convert to JSON: " + err.Error()}
	}
	return wire.DecodePolicy(bytes.NewReader(asJSON))
}

func write(w io.Writer, p wire.Policy, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	case "yaml":
		// Through JSON so YAML keys match the wire names.
		var doc any
		b, _ := json.Marshal(p)
		if err := json.Unmarshal(b, &doc); err != nil {
			return err
		}
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		return enc.Encode(doc)
	}
	return fmt.Errorf("policy get: -o must be yaml or json, not %q", format)
}

func diffRules(cur, want wire.Policy) string {
	cur.Version, want.Version = 0, 0
	d := policy.Diff(cur, want)
	if !strings.ContainsAny(firstChars(d), "+-") {
		return "no changes\n"
	}
	return d
}

// firstChars returns the first character of every line.
func firstChars(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if line != "" {
			b.WriteByte(line[0])
		}
	}
	return b.String()
}

type client struct {
	base, token string
	http        *http.Client
}

func (c *client) get(ctx context.Context, service string) (wire.Policy, error) {
	var p wire.Policy
	err := c.do(ctx, http.MethodGet, "/api/v1/policies/"+url.PathEscape(service), nil, &p)
	return p, err
}

func (c *client) put(ctx context.Context, p wire.Policy, reason string) (wire.Policy, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return p, err
	}
	path := "/api/v1/policies/" + url.PathEscape(p.Service)
	if reason != "" {
		path += "?reason=" + url.QueryEscape(reason)
	}
	var out wire.Policy
	err = c.do(ctx, http.MethodPut, path, body, &out)
	return out, err
}

func (c *client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("policy: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error  string            `json:"error"`
			Errors []wire.FieldError `json:"errors"`
		}
		_ = json.Unmarshal(data, &e)
		if len(e.Errors) > 0 {
			return wire.FieldErrors(e.Errors)
		}
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return fmt.Errorf("policy: %s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("policy: bad answer: %w", err)
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
