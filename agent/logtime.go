package agent

import (
	"sync/atomic"
	"time"
)

// timeCache holds the RFC 3339 text of one second, so that stamping a log
// line formats only the fraction. Lines arrive in bursts within the same
// second; a miss costs one Format and one small allocation.
type timeCache struct {
	cur atomic.Pointer[cachedSecond]
}

type cachedSecond struct {
	unix   int64
	loc    *time.Location
	prefix string // "2006-01-02T15:04:05"
	zone   string // "Z" or "+01:00"
}

// appendRFC3339Nano appends t formatted like time.RFC3339Nano.
func (c *timeCache) appendRFC3339Nano(b []byte, t time.Time) []byte {
	s := c.cur.Load()
	if s == nil || s.unix != t.Unix() || s.loc != t.Location() {
		s = &cachedSecond{unix: t.Unix(), loc: t.Location(),
			prefix: t.Format("2006-01-02T15:04:05"), zone: t.Format("Z07:00")}
		c.cur.Store(s)
	}
	b = append(b, s.prefix...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, s.zone...)
}
