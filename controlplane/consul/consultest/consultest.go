// Package consultest starts a real Consul agent in dev mode on loopback
// for tests, and stops it when the test ends.
//
// The binary comes from the environment variable named by EnvBinary
// (scripts/test.sh sets it), else from the cache path scripts/test.sh
// builds it into. When it is missing the test is skipped, or fails when
// the environment variable CI is "true".
package consultest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// EnvBinary names the environment variable holding the Consul binary's
// path.
const EnvBinary = "PILOTHOUSE_CONSUL"

// startTimeout bounds how long Start waits for the agent to elect itself
// leader.
const startTimeout = 30 * time.Second

// Server is a running Consul dev agent.
type Server struct {
	// Addr is the agent's HTTP address, host:port.
	Addr string

	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

// Stop kills the agent now (as a crash would) and waits for it to exit.
// It is safe to call more than once; t.Cleanup calls it too.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Client returns a new API client for the agent.
func (s *Server) Client(t testing.TB) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("consultest: client: %v", err)
	}
	return c
}

// Binary returns the Consul binary's path, or "" when there is none.
func Binary() string {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	p := filepath.Join(home, ".cache", "pilothouse", "consul-1.14.11", "consul")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// Start runs a Consul dev agent on free loopback ports, waits until it
// has a leader and stops it in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := fmt.Sprintf("consultest: no Consul binary (set %s; scripts/test.sh builds one)", EnvBinary)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ports := freePorts(t, 4)
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(ports[0]), log: &lockedBuffer{}}
	s.cmd = exec.Command(bin, "agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1", "-https-port", "-1",
		"-serf-lan-port", strconv.Itoa(ports[1]),
		"-serf-wan-port", strconv.Itoa(ports[2]),
		"-server-port", strconv.Itoa(ports[3]),
		"-log-level", "warn",
	)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("consultest: start %s: %v", bin, err)
	}
	s.done = make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.Stop)
	if err := s.waitLeader(s.done); err != nil {
		t.Fatalf("consultest: %v\nconsul output:\n%s", err, s.log.String())
	}
	return s
}

// waitLeader asks the agent for its leader until it names one. This is
// the one polling loop: the agent offers nothing to block on before its
// HTTP server is up.
func (s *Server) waitLeader(exited <-chan struct{}) error {
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	c, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		leader, err := c.Status().Leader()
		if err == nil && leader != "" {
			return nil
		}
		select {
		case <-exited:
			return errors.New("agent exited before electing a leader")
		case <-ctx.Done():
			return fmt.Errorf("no leader after %s (last error: %v)", startTimeout, err)
		case <-tick.C:
		}
	}
}

// freePorts returns n distinct TCP ports free on loopback just now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("consultest: free port: %v", err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out
}

// lockedBuffer collects the agent's output from two pipes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
