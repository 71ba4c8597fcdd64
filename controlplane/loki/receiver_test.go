package loki

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// gotEntry and gotStream are what the test receiver decoded from a push.
type gotEntry struct {
	Time time.Time
	Line string
	Meta map[string]string
}

type gotStream struct {
	Labels  string
	Entries []gotEntry
}

// receiver is a fake Loki push endpoint that decodes protobuf + snappy
// independently of the client under test.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	pushes [][]gotStream
	header []http.Header
	// status, when non-nil, picks the answer of the nth push (0-based).
	status func(n int) int
	// got receives a signal per decoded push.
	got chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	return &receiver{t: t, got: make(chan struct{}, 1000)}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != PushPath {
		http.NotFound(w, r)
		return
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	plain, err := snappy.Decode(nil, raw)
	if err != nil {
		http.Error(w, "snappy: "+err.Error(), http.StatusBadRequest)
		return
	}
	streams, err := decodePushRequest(plain)
	if err != nil {
		http.Error(w, "proto: "+err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	n := len(rc.pushes)
	rc.pushes = append(rc.pushes, streams)
	rc.header = append(rc.header, r.Header.Clone())
	rc.mu.Unlock()
	status := http.StatusNoContent
	if rc.status != nil {
		status = rc.status(n)
	}
	w.WriteHeader(status)
	rc.got <- struct{}{}
}

func (rc *receiver) all() ([][]gotStream, []http.Header) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]gotStream(nil), rc.pushes...), append([]http.Header(nil), rc.header...)
}

// count reports how many pushes arrived.
func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.pushes)
}

// sorted returns push's streams ordered by their labels: the client
// writes them in map order.
func sorted(push []gotStream) []gotStream {
	out := append([]gotStream(nil), push...)
	sort.Slice(out, func(i, j int) bool { return out[i].Labels < out[j].Labels })
	return out
}

// fields walks one protobuf message, calling fn for each field.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if err := fn(num, typ, v, 0); err != nil {
				return err
			}
			b = b[m:]
		case protowire.VarintType:
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if err := fn(num, typ, nil, x); err != nil {
				return err
			}
			b = b[m:]
		default:
			return fmt.Errorf("unexpected wire type %d", typ)
		}
	}
	return nil
}

func decodePushRequest(b []byte) ([]gotStream, error) {
	var out []gotStream
	err := fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		if num != 1 {
			return fmt.Errorf("PushRequest: unknown field %d", num)
		}
		var s gotStream
		err := fields(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
			switch num {
			case 1:
				s.Labels = string(v)
			case 2:
				e, err := decodeEntry(v)
				if err != nil {
					return err
				}
				s.Entries = append(s.Entries, e)
			default:
				return fmt.Errorf("Stream: unknown field %d", num)
			}
			return nil
		})
		out = append(out, s)
		return err
	})
	return out, err
}

func decodeEntry(b []byte) (gotEntry, error) {
	var e gotEntry
	var sec, nanos int64
	err := fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			return fields(v, func(num protowire.Number, _ protowire.Type, _ []byte, x uint64) error {
				switch num {
				case 1:
					sec = int64(x)
				case 2:
					nanos = int64(x)
				}
				return nil
			})
		case 2:
			e.Line = string(v)
		case 3:
			var name, value string
			if err := fields(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
				if num == 1 {
					name = string(v)
				} else {
					value = string(v)
				}
				return nil
			}); err != nil {
				return err
			}
			if e.Meta == nil {
				e.Meta = map[string]string{}
			}
			e.Meta[name] = value
		default:
			return fmt.Errorf("Entry: unknown field %d", num)
		}
		return nil
	})
	e.Time = time.Unix(sec, nanos).UTC()
	return e, err
}
