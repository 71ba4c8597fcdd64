package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/pilothouse/pilothouse/agent/internal/batch"
	"github.com/pilothouse/pilothouse/agent/internal/routestats"
	"github.com/pilothouse/pilothouse/agent/wire"
)

// instrumentationName names the tracer and the OTLP log scope.
const instrumentationName = "github.com/pilothouse/pilothouse/agent"

// ErrNoService is returned by New when the service name is empty.
var ErrNoService = errors.New("agent: service name is required (New's argument or " + EnvServiceName + ")")

// Agent instruments one instance of a service. Create it with New, install
// Middleware on the Gin engine and call Shutdown before the process exits.
// All methods are safe for concurrent use.
type Agent struct {
	service string
	cfg     config
	started time.Time

	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	// resource and sampler are shared by the SDK's spans and the
	// middleware's own server spans (serverspan.go).
	resource *resource.Resource
	sampler  sdktrace.Sampler
	spans    *spanQueue // nil when spans are not exported

	sink   *logSink
	logger *slog.Logger

	metrics *metrics
	routes  *routestats.Recorder
	names   spanNames

	checksMu sync.Mutex
	checks   []*check

	pol          policyState
	endpoints    discovery
	policyClient *policyClient // nil without a control plane
	policyDone   chan struct{}

	beats      heartbeatCounters
	beatStop   chan struct{}
	beatDone   chan struct{}
	beatCancel context.CancelFunc
	shutdown   sync.Once
	isShutdown atomic.Bool
}

// New returns an agent for service, configured by opts and the
// environment (see the package documentation). When a control plane or a
// traces endpoint is configured, New starts the background exporters and
// the heartbeat; nothing is sent on the caller's goroutine.
func New(service string, opts ...Option) (*Agent, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(service) == "" {
		service = strings.TrimSpace(cfg.getenv(EnvServiceName))
	}
	if service == "" {
		return nil, ErrNoService
	}
	sampler, err := cfg.sampler()
	if err != nil {
		return nil, err
	}
	a := &Agent{
		service: service,
		cfg:     cfg,
		started: cfg.now(),
		routes:  routestats.New(),
	}
	a.names.init()

	// The environment's attributes first: the agent's own win over them.
	resAttrs := append(cfg.resourceAttrs[:len(cfg.resourceAttrs):len(cfg.resourceAttrs)],
		attribute.String("service.name", service),
		attribute.String(wire.AttrInstanceID, cfg.instanceID),
	)
	if cfg.version != "" {
		resAttrs = append(resAttrs, attribute.String("service.version", cfg.version))
	}
	a.resource = resource.NewSchemaless(resAttrs...)
	a.sampler = sampler
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(a.resource),
		sdktrace.WithSampler(sampler),
	}
	if cfg.traces.endpoint != "" && !cfg.otelDisabled {
		exp := &spanExporter{post: cfg.poster(cfg.traces), resource: a.resource.Attributes()}
		a.spans = newSpanQueue(exp, cfg.spanBatch.settings(cfg.spanQueue))
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(a.spans))
	}
	for _, sp := range cfg.spanProcessors {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(sp))
	}
	a.tp = sdktrace.NewTracerProvider(tpOpts...)
	a.tracer = a.tp.Tracer(instrumentationName)

	a.sink = newLogSink(a, cfg)
	a.logger = slog.New(&logHandler{sink: a.sink})
	a.metrics = newMetrics(a)

	a.pol.counters.byID = map[string]*ruleCounters{}
	if cfg.policyFile != "" {
		if err := a.loadPolicyFile(cfg.policyFile); err != nil {
			a.logger.Warn("agent: policy file not applied", "path", cfg.policyFile, "err", err.Error())
		}
	}

	if a.spans != nil {
		a.spans.q.Start()
	}
	if a.sink.queue != nil {
		a.sink.queue.Start()
	}
	if cfg.controlPlane != "" {
		ctx, cancel := context.WithCancel(context.Background())
		a.beatCancel = cancel
		a.beatStop = make(chan struct{})
		a.beatDone = make(chan struct{})
		go a.runHeartbeat(ctx)
		a.policyClient = newPolicyClient(&a.cfg)
		a.policyDone = make(chan struct{})
		go a.runPolicy(ctx)
	}
	return a, nil
}

// InstanceID returns the ID this instance reports itself under.
func (a *Agent) InstanceID() string { return a.cfg.instanceID }

// Service returns the service name given to New.
func (a *Agent) Service() string { return a.service }

// Logger returns the agent's logger, which is not bound to a request: its
// records carry service and instance, and request_id, trace_id and span_id
// when logged with a request's context (InfoContext and friends).
func (a *Agent) Logger() *slog.Logger { return a.logger }

// TracerProvider returns the agent's tracer provider, for instrumenting
// code beyond HTTP. It is not installed as the otel global.
func (a *Agent) TracerProvider() trace.TracerProvider { return a.tp }

// Shutdown stops the heartbeat (sending a final beat, best effort) and
// flushes queued spans and logs, giving up when ctx ends. The agent keeps
// serving requests afterwards but exports nothing more. Calling Shutdown
// again returns nil.
func (a *Agent) Shutdown(ctx context.Context) error {
	var errs []error
	a.shutdown.Do(func() {
		a.isShutdown.Store(true)
		if a.beatStop != nil {
			close(a.beatStop)
			a.beatCancel()
			select {
			case <-a.beatDone:
			case <-ctx.Done():
			}
			select {
			case <-a.policyDone:
			case <-ctx.Done():
			}
			if ctx.Err() == nil {
				a.beat(ctx)
			}
		}
		if err := a.tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("agent: flush spans: %w", err))
		}
		if a.sink.queue != nil {
			if err := a.sink.queue.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("agent: flush logs: %w", err))
			}
		}
		if a.sink.local != nil {
			if err := a.sink.local.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("agent: flush local log: %w", err))
			}
		}
	})
	return errors.Join(errs...)
}

func (a *Agent) spanStats() batch.Stats {
	if a.spans == nil {
		return batch.Stats{}
	}
	return a.spans.q.Stats()
}

func (a *Agent) logStats() batch.Stats {
	if a.sink == nil || a.sink.queue == nil {
		return batch.Stats{}
	}
	return a.sink.queue.Stats()
}

// localLogStats counts the JSON lines written to the local log writer
// (as exported) and those lost because it was too slow or failed.
func (a *Agent) localLogStats() batch.Stats {
	if a.sink == nil || a.sink.local == nil {
		return batch.Stats{}
	}
	return batch.Stats{Exported: a.sink.local.Written(), Dropped: a.sink.local.Dropped()}
}
