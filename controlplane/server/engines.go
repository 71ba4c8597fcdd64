package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/pilothouse/pilothouse/controlplane/forward"
	"github.com/pilothouse/pilothouse/controlplane/ingest"
	"github.com/pilothouse/pilothouse/controlplane/loki"
	"github.com/pilothouse/pilothouse/controlplane/tracebackend"
)

// engines are the optional external backends received telemetry is
// teed to: Loki for logs, an OTLP/HTTP endpoint for spans. Both sit
// behind bounded queues that drop, so a slow or dead backend never
// reaches ingest; the embedded store stays the source of the dashboard.
type engines struct {
	loki   *loki.Forwarder
	traces *tracebackend.Forwarder
}

// startEngines starts the forwarders cfg asks for and wraps the store's
// writers so each batch is stored first and then queued for the backend.
func (s *Server) startEngines(spans ingest.SpanWriter, logs ingest.LogWriter) (ingest.SpanWriter, ingest.LogWriter, error) {
	if s.cfg.LokiURL != "" {
		f, err := loki.NewForwarder(loki.Config{URL: s.cfg.LokiURL, Registerer: s.metrics, Delivery: forward.Delivery{Logger: s.cfg.Logger}})
		if err != nil {
			return nil, nil, fmt.Errorf("server: loki: %w", err)
		}
		s.engines.loki = f
		logs = loki.Tee{Primary: logs, Forwarder: f}
	}
	if s.cfg.OTLPForwardURL != "" {
		f, err := tracebackend.NewForwarder(tracebackend.ForwarderConfig{URL: s.cfg.OTLPForwardURL, Registerer: s.metrics, Delivery: forward.Delivery{Logger: s.cfg.Logger}})
		if err != nil {
			s.closeEngines(context.Background())
			return nil, nil, fmt.Errorf("server: otlp forward: %w", err)
		}
		s.engines.traces = f
		spans = tracebackend.Tee{Primary: spans, Forwarder: f}
	}
	return spans, logs, nil
}

// closeEngines pushes what the forwarders hold until ctx ends.
func (s *Server) closeEngines(ctx context.Context) error {
	var errs []error
	if s.engines.loki != nil {
		errs = append(errs, s.engines.loki.Close(ctx))
	}
	if s.engines.traces != nil {
		errs = append(errs, s.engines.traces.Close(ctx))
	}
	return errors.Join(errs...)
}
