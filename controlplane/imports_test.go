package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/pilothouse/pilothouse"

// goListDeps returns every package pkg depends on, itself included.
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestImportRules enforces the import rules of DESIGN.md: a service that
// embeds the agent stays small, the contract stays stdlib-only, and the UI
// never reaches into the control plane.
func TestImportRules(t *testing.T) {
	tests := []struct {
		name      string
		pkg       string
		forbidden []string
		stdlib    bool
	}{
		{
			name: "agent stays small",
			pkg:  module + "/agent",
			forbidden: []string{"github.com/a-h/templ", "github.com/hashicorp/consul", "github.com/grafana/loki-client-go",
				"modernc.org/sqlite", module + "/controlplane", module + "/ui", module + "/agent/consulreg"},
		},
		{
			name:      "agent internals stay consul-free",
			pkg:       module + "/agent/internal/...",
			forbidden: []string{"github.com/hashicorp/consul", module + "/agent/consulreg"},
		},
		{
			// agent/consulreg is opt-in: it alone under agent/ may use Consul.
			name: "agent packages stay off the control plane",
			pkg:  module + "/agent/...",
			forbidden: []string{"github.com/a-h/templ", "github.com/grafana/loki-client-go",
				"modernc.org/sqlite", module + "/controlplane", module + "/ui"},
		},
		{name: "wire is stdlib only", pkg: module + "/agent/wire", stdlib: true},
		{name: "ui does not import the control plane", pkg: module + "/ui/...", forbidden: []string{module + "/controlplane"}},
		{
			// Sharing users through Consul is wired by the server (auth.Shared).
			name: "auth stays consul-free", pkg: module + "/controlplane/auth",
			forbidden: []string{"github.com/hashicorp/consul", module + "/controlplane/consul"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, dep := range goListDeps(t, tt.pkg) {
				for _, f := range tt.forbidden {
					if dep == f || strings.HasPrefix(dep, f+"/") {
						t.Errorf("%s depends on %s", tt.pkg, dep)
					}
				}
				if tt.stdlib && strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") && !strings.HasPrefix(dep, module+"/agent/wire") {
					t.Errorf("%s depends on non-stdlib %s", tt.pkg, dep)
				}
			}
		})
	}
}
