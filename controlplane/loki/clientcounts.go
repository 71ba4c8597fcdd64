package loki

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Names of the loki-client-go counters the Forwarder's metrics are
// derived from. The library registers them on Prometheus' default
// registry when it is imported and labels them with the Loki host
// (host:port of the push URL).
const (
	clientSentEntries    = "promtail_sent_entries_total"
	clientDroppedEntries = "promtail_dropped_entries_total"
	clientRequests       = "promtail_request_duration_seconds" // a histogram; its count is the requests
	clientHostLabel      = "host"
	clientStatusLabel    = "status_code"
)

// clientCounts are loki-client-go's running totals for one Loki host.
type clientCounts struct {
	sent, dropped         uint64 // log entries Loki accepted; dropped after the last attempt
	pushesOK, pushesError uint64 // requests answered 2xx; any other answer or no answer
}

// readClientCounts reads host's totals from g. ok is false when g does
// not have the library's counters for host: they are created at zero
// when a client for host is made, so then g is not the registry the
// library registered on.
func readClientCounts(g prometheus.Gatherer, host string) (c clientCounts, ok bool) {
	// Gather returns what it could collect along with an error about the
	// rest; the library's families are read from whatever came back.
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if labelValue(m, clientHostLabel) != host {
				continue
			}
			switch mf.GetName() {
			case clientSentEntries:
				c.sent, ok = uint64(m.GetCounter().GetValue()), true
			case clientDroppedEntries:
				c.dropped = uint64(m.GetCounter().GetValue())
			case clientRequests:
				if strings.HasPrefix(labelValue(m, clientStatusLabel), "2") {
					c.pushesOK += m.GetHistogram().GetSampleCount()
				} else {
					c.pushesError += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return c, ok
}

func labelValue(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// since returns how much each total grew from earlier, and the totals
// to compare with next time. Totals only grow; one that reads lower is
// not counted again when it recovers.
func (c clientCounts) since(earlier clientCounts) (delta, seen clientCounts) {
	grow := func(now, before uint64) (uint64, uint64) {
		if now < before {
			return 0, before
		}
		return now - before, now
	}
	delta.sent, seen.sent = grow(c.sent, earlier.sent)
	delta.dropped, seen.dropped = grow(c.dropped, earlier.dropped)
	delta.pushesOK, seen.pushesOK = grow(c.pushesOK, earlier.pushesOK)
	delta.pushesError, seen.pushesError = grow(c.pushesError, earlier.pushesError)
	return delta, seen
}
