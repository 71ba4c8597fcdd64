package ui

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
)

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	id, name, data string
}

// readEvent reads the next event that has data, skipping comments.
func readEvent(t *testing.T, r *bufio.Reader) sseEvent {
	t.Helper()
	var ev sseEvent
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				return ev
			}
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
}

func TestLogStreamSendsNewLines(t *testing.T) {
	f := newFakeSource()
	h := newTestHandler(f, WithTailInterval(10*time.Millisecond))
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/logs/stream?service=orders&after=998", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
		t.Fatalf("Content-Type: got %q, want text/event-stream", got)
	}
	br := bufio.NewReader(resp.Body)

	// No orders line has Seq > 998 yet; the first event carries this one.
	f.addLog(LogLine{Time: testNow, Service: "orders", Level: "ERROR", Body: "multi\nline " + xssPayload, RequestID: "req-new", TraceID: testTraceID})
	ev := readEvent(t, br)
	if ev.name != "lines" {
		t.Fatalf("event: got %q, want lines", ev.name)
	}
	if ev.id != "1001" {
		t.Errorf("id: got %q, want 1001", ev.id)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader("<table><tbody>" + ev.data + "</tbody></table>"))
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Find(testid("log-line")).Length(); got != 1 {
		t.Fatalf("rows: got %d, want 1", got)
	}
	if got := doc.Find(testid("log-body")).Text(); got != "multi\nline "+xssPayload {
		t.Errorf("body: got %q, want the line as text", got)
	}
	// Lines of other services are filtered out; the next orders line is
	// the only one in the next event.
	f.addLog(LogLine{Time: testNow, Service: "payments", Level: "INFO", Body: "other service"})
	f.addLog(LogLine{Time: testNow, Service: "orders", Level: "INFO", Body: "second"})
	ev = readEvent(t, br)
	if ev.id != "1003" || !strings.Contains(ev.data, "second") || strings.Contains(ev.data, "other service") {
		t.Errorf("second event: got id %q data %q, want id 1003 with only the orders line", ev.id, ev.data)
	}
}

// TestLogStreamOutlivesServerTimeouts: a server with short read and
// write timeouts still streams after they pass.
func TestLogStreamOutlivesServerTimeouts(t *testing.T) {
	f := newFakeSource()
	srv := httptest.NewUnstartedServer(newTestHandler(f, WithTailInterval(20*time.Millisecond)))
	srv.Config.ReadTimeout = 100 * time.Millisecond
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/logs/stream?after=1000", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// Read idle comments until well past both timeouts.
	for deadline := time.Now().Add(400 * time.Millisecond); time.Now().Before(deadline); {
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatalf("stream ended early: %v", err)
		}
	}
	f.addLog(LogLine{Time: testNow, Service: "orders", Level: "INFO", Body: "after the timeouts"})
	if ev := readEvent(t, br); !strings.Contains(ev.data, "after the timeouts") {
		t.Errorf("event: got %q, want the new line", ev.data)
	}
}

func TestLogStreamResumesFromLastEventID(t *testing.T) {
	f := newFakeSource()
	h := newTestHandler(f, WithTailInterval(time.Hour))
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/logs/stream?after=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Last-Event-ID", "995")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ev := readEvent(t, bufio.NewReader(resp.Body))
	doc, err := goquery.NewDocumentFromReader(strings.NewReader("<table><tbody>" + ev.data + "</tbody></table>"))
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Find(testid("log-line")).Length(); got != 5 {
		t.Errorf("rows after 995: got %d, want 5", got)
	}
	if ev.id != "1000" {
		t.Errorf("id: got %q, want 1000", ev.id)
	}
}

func TestTailResumesAfterTheHighestSeq(t *testing.T) {
	f := newFakeSource()
	// A late line: an old timestamp, stored last.
	f.logs[3].Seq = 5000
	r := get(t, newTestHandler(f), "/logs?limit=10")
	stream, _ := r.doc.Find(testid("log-results")).Attr("sse-connect")
	if want := "/logs/stream?after=5000"; stream != want {
		t.Errorf("stream: got %q, want %q", stream, want)
	}
}

func TestWriteEvent(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"one line", "<tr></tr>", "id: 7\nevent: lines\ndata: <tr></tr>\n\n"},
		{"newlines", "a\nb\r\nc\rd", "id: 7\nevent: lines\ndata: a\ndata: b\ndata: c\ndata: d\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			writeEvent(&b, "lines", "7", tt.data)
			if got := b.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
