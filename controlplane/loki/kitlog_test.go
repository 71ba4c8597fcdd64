package loki

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-kit/kit/log"
	"github.com/go-kit/kit/log/level"
)

// TestKitLogger logs the way loki-client-go does (go-kit's level
// helpers and log.With) and checks what slog receives.
func TestKitLogger(t *testing.T) {
	tests := []struct {
		name string
		log  func(l log.Logger)
		want string
	}{
		{name: "error with context", log: func(l log.Logger) {
			level.Error(log.With(l, "component", "client", "host", "loki:3100")).Log("msg", "final error sending batch", "status", 400, "error", errors.New("bad"))
		}, want: `level=ERROR msg="loki: client: final error sending batch" component=client host=loki:3100 status=400 error=bad`},
		{name: "warn", log: func(l log.Logger) { level.Warn(l).Log("msg", "will retry") }, want: `level=WARN msg="loki: client: will retry"`},
		{name: "message key", log: func(l log.Logger) { level.Error(l).Log("message", "closing response body", "error", "eof") },
			want: `level=ERROR msg="loki: client: closing response body" error=eof`},
		{name: "no level is info", log: func(l log.Logger) { l.Log("msg", "hello", "odd") }, want: `level=INFO msg="loki: client: hello" odd=(MISSING)`},
		{name: "below the handler's level", log: func(l log.Logger) { level.Debug(l).Log("msg", "noise") }, want: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}})
			tt.log(kitLogger{slog.New(h)})
			if got := strings.TrimSpace(buf.String()); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
