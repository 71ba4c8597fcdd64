package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemoCommand runs `controlplane demo` as the README's first command
// does: it prints a dashboard URL and a JSON API curl line that works,
// and it stops cleanly when interrupted (the context is what Ctrl-C
// cancels in main).
func TestDemoCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runDemo(ctx, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--rate", "0"}, pw, io.Discard)
		pw.Close()
		done <- err
	}()
	// The banner, line by line, until its last line; the rest of the
	// output is read into rest.
	stall := time.AfterFunc(60*time.Second, func() { pr.CloseWithError(errors.New("no banner after 60s")) })
	lines := bufio.NewScanner(pr)
	var banner strings.Builder
	for lines.Scan() {
		banner.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "Press Ctrl-C to stop") {
			break
		}
	}
	stall.Stop()
	rest := make(chan string, 1)
	go func() {
		var b strings.Builder
		for lines.Scan() {
			b.WriteString(lines.Text() + "\n")
		}
		rest <- b.String()
	}()
	out := banner.String()
	m := regexp.MustCompile(`curl -H 'Authorization: Bearer ([^']+)' (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no JSON API curl line in:\n%s", out)
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
	dash := regexp.MustCompile(`Open the dashboard:\s+(\S+)`).FindStringSubmatch(out)
	if dash == nil {
		t.Fatalf("no dashboard URL in:\n%s", out)
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
	if r := <-rest; !strings.Contains(r, "stopping the demo") {
		t.Errorf("no stop message in:\n%s", r)
	}
}
