package agent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// Environment variables from the OpenTelemetry specification that the
// agent reads.
const (
	EnvTracesSampler      = "OTEL_TRACES_SAMPLER"
	EnvTracesSamplerArg   = "OTEL_TRACES_SAMPLER_ARG"
	EnvOTLPTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvOTLPEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
)

// ErrInvalidConfig is returned by New when an option or environment
// variable has an unusable value.
var ErrInvalidConfig = errors.New("agent: invalid configuration")

// newConfig applies opts and fills in defaults.
func newConfig(opts []Option) (config, error) {
	c := config{accessLog: true}
	c.traces, c.logs = newSignals()
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.getenv == nil {
		c.getenv = os.Getenv
	}
	if c.now == nil {
		c.now = time.Now
	}
	if err := c.setControlPlanes(); err != nil {
		return c, err
	}
	if !c.tokenSet {
		c.token = c.getenv(wire.EnvToken)
	}
	for _, s := range []*otlpSignal{&c.traces, &c.logs} {
		if err := c.resolveEndpoint(s); err != nil {
			return c, err
		}
	}
	if c.version == "" {
		c.version = buildVersion(debug.ReadBuildInfo)
	}
	if c.address == "" {
		if a := strings.TrimSpace(c.getenv(wire.EnvAddress)); a != "" {
			if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
				return c, fmt.Errorf("%w: %s=%q is not host:port", ErrInvalidConfig, wire.EnvAddress, a)
			}
			c.address = a
		}
	}
	if c.instanceID == "" {
		c.instanceID = defaultInstanceID()
	}
	if c.heartbeat == 0 {
		c.heartbeat = wire.DefaultBeatPeriod
	}
	if c.heartbeat < wire.MinBeatInterval || c.heartbeat > wire.MaxBeatInterval {
		return c, fmt.Errorf("%w: heartbeat interval %s not between %s and %s",
			ErrInvalidConfig, c.heartbeat, wire.MinBeatInterval, wire.MaxBeatInterval)
	}
	if err := c.readOTelEnv(); err != nil {
		return c, err
	}
	if c.spanQueue <= 0 {
		c.spanQueue = DefaultQueueSize
	}
	if c.logQueue <= 0 {
		c.logQueue = DefaultQueueSize
	}
	if !c.localLogSet {
		c.localLog = os.Stderr
	}
	if c.httpClient == nil {
		c.httpClient = &http.Client{
			Timeout:   DefaultExportTimeout,
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
		}
	}
	if c.policyWait == 0 {
		c.policyWait = wire.DefaultPolicyWait
	}
	if c.policyWait < 0 || c.policyWait > wire.MaxPolicyWait {
		return c, fmt.Errorf("%w: policy wait %s not between 0s and %s", ErrInvalidConfig, c.policyWait, wire.MaxPolicyWait)
	}
	if c.policyBackoffMin <= 0 {
		c.policyBackoffMin = defaultBackoffMin
	}
	if c.policyBackoffMax < c.policyBackoffMin {
		c.policyBackoffMax = max(defaultBackoffMax, c.policyBackoffMin)
	}
	if c.outboundTimeout < 0 {
		return c, fmt.Errorf("%w: negative outbound timeout", ErrInvalidConfig)
	}
	return c, nil
}

// setControlPlanes reads the control-plane URLs from the options or
// $PILOTHOUSE_URL (a comma-separated list) and checks every one.
func (c *config) setControlPlanes() error {
	urls := c.controlPlaneURLs
	if !c.controlPlaneSet {
		var err error
		if urls, err = parseControlPlanes(c.getenv(wire.EnvURL)); errors.Is(err, errNoControlPlane) {
			urls = nil
		} else if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidConfig, wire.EnvURL, err)
		}
	} else if len(urls) > 0 {
		var err error
		if urls, err = checkControlPlanes(urls); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	c.controlPlaneURLs, c.planes, c.controlPlane = urls, newControlPlanes(urls), ""
	if len(urls) > 0 {
		c.controlPlane = urls[0]
	}
	return nil
}

// replicas returns the control-plane replicas, also for a config built
// by hand with only controlPlane set (tests).
func (c *config) replicas() *controlPlanes {
	if c.planes == nil && c.controlPlane != "" {
		c.planes = newControlPlanes([]string{strings.TrimRight(c.controlPlane, "/")})
	}
	return c.planes
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// sampler builds the sampler from the options or, if none was given, from
// OTEL_TRACES_SAMPLER. The default is parent-based, always on.
func (c *config) sampler() (sdktrace.Sampler, error) {
	if c.sampleRatioSet {
		if c.sampleRatio < 0 || c.sampleRatio > 1 {
			return nil, fmt.Errorf("%w: sample ratio %v not in [0, 1]", ErrInvalidConfig, c.sampleRatio)
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.sampleRatio)), nil
	}
	name := strings.ToLower(strings.TrimSpace(c.getenv(EnvTracesSampler)))
	ratio := func() (float64, error) {
		arg := strings.TrimSpace(c.getenv(EnvTracesSamplerArg))
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("%w: %s=%q is not a ratio in [0, 1]", ErrInvalidConfig, EnvTracesSamplerArg, arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.TraceIDRatioBased(r), nil
	case "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	default:
		return nil, fmt.Errorf("%w: %s=%q is not supported", ErrInvalidConfig, EnvTracesSampler, name)
	}
}

// defaultInstanceID is hostname-pid-random, unique enough to tell restarts
// of the same process apart.
func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.Uint32()&0xffff)
}

// buildVersion is the version WithVersion defaults to, from the build
// information read returns: the main module's version unless it is the
// "(devel)" of a local build, else the VCS revision; "" without either.
func buildVersion(read func() (*debug.BuildInfo, bool)) string {
	bi, ok := read()
	if !ok || bi == nil {
		return ""
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return ""
	}
	rev = rev[:min(len(rev), 12)]
	if modified == "true" {
		rev += "+dirty"
	}
	return rev
}
