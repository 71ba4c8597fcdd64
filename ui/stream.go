package ui

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// logStream is the live tail: a server-sent event stream of new log lines
// matching the same filters as /logs. Each "lines" event carries rendered
// rows (the logRow component), newest first, for htmx to prepend; its id
// is the newest Seq, so a reconnecting browser resumes where it left off.
func (h *Handler) logStream(w http.ResponseWriter, r *http.Request) {
	q, _, err := parseLogQuery(r.URL.Query(), h.cfg.now())
	if err != nil {
		http.Error(w, paramMessage(err), http.StatusBadRequest)
		return
	}
	if last, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64); err == nil && last > q.AfterSeq {
		q.AfterSeq = last
	}
	q.BeforeSeq = 0
	q.Limit = tailBatch

	rc := http.NewResponseController(w)
	// A stream outlives the server's read and write timeouts (a read
	// deadline would cancel the request's context). Not every writer can
	// lift them; then the browser reconnects and resumes by Last-Event-ID.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte("retry: 3000\n\n")); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}

	ctx := r.Context()
	ticker := time.NewTicker(h.cfg.tail)
	defer ticker.Stop()
	var rows, event bytes.Buffer
	for {
		lines, err := h.src.Logs(ctx, q)
		event.Reset()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			h.cfg.log.Error("ui: live tail read failed", "err", err)
			event.WriteString(": source error\n\n")
		case len(lines) == 0:
			event.WriteString(": idle\n\n")
		default:
			rows.Reset()
			for _, l := range lines {
				if err := logRow(l).Render(ctx, &rows); err != nil {
					return
				}
			}
			q.AfterSeq = max(q.AfterSeq, maxSeq(lines))
			writeEvent(&event, "lines", strconv.FormatInt(q.AfterSeq, 10), rows.String())
		}
		if _, err := w.Write(event.Bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// maxSeq is the highest Seq of lines. Lines come newest first by time,
// but a line that arrived late carries a higher Seq than newer ones, so
// the tail resumes after the highest Seq, not after the first line.
func maxSeq(lines []LogLine) int64 {
	var m int64
	for _, l := range lines {
		m = max(m, l.Seq)
	}
	return m
}

// writeEvent encodes one SSE event; every line of data gets its own
// "data:" field, which the browser joins back with newlines.
func writeEvent(b *bytes.Buffer, name, id, data string) {
	b.WriteString("id: " + id + "\nevent: " + name + "\n")
	data = strings.ReplaceAll(data, "\r\n", "\n")
	data = strings.ReplaceAll(data, "\r", "\n")
	for line := range strings.SplitSeq(data, "\n") {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
}
