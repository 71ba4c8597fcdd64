package faults_test

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/server"
)

// Environment of a control plane child process (see startChild): the
// test binary re-executed serves a control plane on a free port over the
// data directory and prints its address.
const (
	envChildDir = "PILOTHOUSE_FAULTS_CHILD_DIR"
	// envChildMaxAge, when set, turns on age retention in the child (a
	// time.Duration), run every tenth of it.
	envChildMaxAge = "PILOTHOUSE_FAULTS_CHILD_MAX_AGE"
	childAgentKey  = "agent-secret"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envChildDir); dir != "" {
		os.Exit(serveChild(dir))
	}
	os.Exit(m.Run())
}

// serveChild runs a control plane until it is killed.
func serveChild(dir string) int {
	cfg := server.Config{DataDir: dir, AgentToken: childAgentKey, Auth: fastAuth}
	if v := os.Getenv(envChildMaxAge); v != "" {
		age, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		cfg.Store.MaxAge, cfg.Store.RetentionInterval = age, age/10
	}
	srv, err := server.New(cfg)
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
