package faults_test

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/pilothouse/pilothouse/controlplane/server"
)

// Environment of a control plane child process (see startChild): the
// test binary re-executed serves a control plane on a free port over the
// data directory and prints its address.
const (
	envChildDir   = "PILOTHOUSE_FAULTS_CHILD_DIR"
	childAgentKey = "agent-secret"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envChildDir); dir != "" {
		os.Exit(serveChild(dir))
	}
	os.Exit(m.Run())
}

// serveChild runs a control plane until it is killed.
func serveChild(dir string) int {
	srv, err := server.New(server.Config{DataDir: dir, AgentToken: childAgentKey, Auth: fastAuth})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}
