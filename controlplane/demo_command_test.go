package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/await"
)

// syncBuffer is a bytes.Buffer safe for the command's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoCommand runs `controlplane demo` as the README's first command
// does: it prints a dashboard URL and a JSON API curl line that works,
// and it stops cleanly when interrupted (the context is what Ctrl-C
// cancels in main).
func TestDemoCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--rate", "0"}, &out, io.Discard)
	}()
	await.Until(t, 30*time.Second, "the demo's banner", func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("demo ended early: %v\n%s", err, out.String())
		default:
		}
		return strings.Contains(out.String(), "Press Ctrl-C to stop"), out.String()
	})
	m := regexp.MustCompile(`curl -H 'Authorization: Bearer ([^']+)' (\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no JSON API curl line in:\n%s", out.String())
	}
	req, _ := http.NewRequest(http.MethodGet, m[2], nil)
	req.Header.Set("Authorization", "Bearer "+m[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the printed curl line: got %d, want 200", resp.StatusCode)
	}
	dash := regexp.MustCompile(`Open the dashboard:\s+(\S+)`).FindStringSubmatch(out.String())
	if dash == nil {
		t.Fatalf("no dashboard URL in:\n%s", out.String())
	}
	if resp, err := http.Get(dash[1] + "login"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the printed dashboard's login page: got %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo after Ctrl-C: got %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the demo did not stop 15s after Ctrl-C")
	}
	if !strings.Contains(out.String(), "stopping the demo") {
		t.Errorf("no stop message in:\n%s", out.String())
	}
}
