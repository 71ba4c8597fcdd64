package faults_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/server"
)

// TestSlowBody sends bodies a byte a second (slowloris) to ingest and to
// the JSON API: the control plane stops reading when its read timeout
// passes (10 s ingest, here 5 s the server's) and answers 408, rather
// than holding the connection for as long as the client likes.
func TestSlowBody(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the read timeouts (about 10 s)")
	}
	srv, base := startServer(t, server.Config{DataDir: t.TempDir(), ReadTimeout: 5 * time.Second})
	operator := apiToken(t, srv.Auth(), auth.RoleOperator)
	addr := strings.TrimPrefix(base, "http://")
	tests := []struct {
		name   string
		method string
		path   string
		token  string
		within time.Duration // the timeout plus slack
	}{
		{name: "traces", method: "POST", path: wire.PathTraces, within: 15 * time.Second},
		{name: "heartbeat", method: "POST", path: wire.PathHeartbeat, within: 15 * time.Second},
		{name: "policy", method: "PUT", path: "/api/v1/policies/checkout", token: operator, within: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n", tt.method, tt.path, addr)
			if tt.token != "" {
				head += "Authorization: Bearer " + tt.token + "\r\n"
			}
			if _, err := io.WriteString(conn, head+"\r\n{"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			// Trickle a byte a second until the server gives up on us.
			answered := make(chan *http.Response, 1)
			go func() {
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					resp = nil
				}
				answered <- resp
			}()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case resp := <-answered:
					took := time.Since(start)
					status := 0
					if resp != nil {
						status = resp.StatusCode
					}
					t.Logf("cut off after %v with status %d (0: connection closed)", took.Round(time.Second), status)
					if status != 0 && status != http.StatusRequestTimeout {
						t.Errorf("status: got %d, want 408 or a closed connection", status)
					}
					return
				case <-tick.C:
					if time.Since(start) > tt.within {
						t.Fatalf("still reading a slow body after %v", tt.within)
					}
					_, _ = io.WriteString(conn, " ")
				}
			}
		})
	}
}
