package loki

import (
	"context"
	"fmt"
	"log/slog"
)

// kitLogger routes loki-client-go's go-kit log events (key/value pairs)
// to slog: the "level" value picks the slog level, "msg" (or "message")
// the message, and the other pairs become attributes. It satisfies
// go-kit's log.Logger, which is all the library asks of a logger.
type kitLogger struct{ l *slog.Logger }

func (k kitLogger) Log(keyvals ...any) error {
	lvl, msg := slog.LevelInfo, ""
	for i := 0; i+1 < len(keyvals); i += 2 {
		switch fmt.Sprint(keyvals[i]) {
		case "level":
			lvl = slogLevel(fmt.Sprint(keyvals[i+1]))
		case "msg", "message":
			if msg == "" {
				msg = fmt.Sprint(keyvals[i+1])
			}
		}
	}
	ctx := context.Background()
	if !k.l.Enabled(ctx, lvl) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(keyvals)/2)
	msgTaken := false
	for i := 0; i < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		var val any = "(MISSING)" // as go-kit writes an odd pair
		if i+1 < len(keyvals) {
			val = keyvals[i+1]
		}
		switch {
		case key == "level":
			continue
		case (key == "msg" || key == "message") && !msgTaken:
			msgTaken = true
			continue
		}
		attrs = append(attrs, slog.Any(key, val))
	}
	k.l.LogAttrs(ctx, lvl, "loki: client: "+msg, attrs...)
	return nil
}

// slogLevel maps go-kit's level names; anything else is info.
func slogLevel(name string) slog.Level {
	switch name {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
