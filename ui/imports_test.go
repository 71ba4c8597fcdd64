package ui

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsStayOutOfTheControlPlane enforces the layering: the UI
// declares what it reads and never reaches into the control plane.
func TestImportsStayOutOfTheControlPlane(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		own := pkg == "github.com/pilothouse/pilothouse/ui" || strings.HasPrefix(pkg, "github.com/pilothouse/pilothouse/ui/")
		if strings.HasPrefix(pkg, "github.com/pilothouse/pilothouse/") && !own && pkg != "github.com/pilothouse/pilothouse/agent/wire" {
			t.Errorf("ui depends on %s, want no project package but its own and agent/wire", pkg)
		}
	}
}
