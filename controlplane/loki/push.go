package loki

import (
	"sort"
	"strings"

	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/common/model"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// Label and structured metadata names Pilothouse writes to Loki.
const (
	LabelService = "service"
	LabelLevel   = "level"

	MetaRequestID = "request_id"
	MetaTraceID   = "trace_id"
	MetaSpanID    = "span_id"
	MetaInstance  = "instance"
)

// unknownService labels records that carry no service name.
const unknownService = "unknown"

// streamLabels is the stream a record goes to: its service and its
// lower-case level, nothing else (low cardinality).
func streamLabels(r *store.LogRecord) model.LabelSet {
	svc := r.Service
	if svc == "" {
		svc = unknownService
	}
	level := strings.ToLower(r.Level)
	if level == "" {
		level = "info"
	}
	return model.LabelSet{LabelService: model.LabelValue(svc), LabelLevel: model.LabelValue(level)}
}

// metadataOf is a record's structured metadata: the IDs a line is looked
// up by, each only when set.
func metadataOf(r *store.LogRecord) push.LabelsAdapter {
	var meta push.LabelsAdapter
	for _, kv := range [...]push.LabelAdapter{
		{Name: MetaRequestID, Value: r.RequestID},
		{Name: MetaTraceID, Value: r.TraceID},
		{Name: MetaSpanID, Value: r.SpanID},
		{Name: MetaInstance, Value: r.Instance},
	} {
		if kv.Value != "" {
			meta = append(meta, kv)
		}
	}
	return meta
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
