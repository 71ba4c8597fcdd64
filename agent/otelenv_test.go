package agent

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/agent/internal/batch"
	"github.com/pilothouse/pilothouse/agent/wire"
)

func TestParseKeyValues(t *testing.T) {
	tests := []struct {
		name, in string
		want     []keyValue
		wantErr  string
	}{
		{name: "empty", in: ""},
		{name: "one", in: "a=b", want: []keyValue{{"a", "b"}}},
		{name: "spaces and empty entries", in: " a = b ,, c=d ,", want: []keyValue{{"a", "b"}, {"c", "d"}}},
		{name: "percent-decoded", in: "team=pay%20ments,k=a%2Cb%3Dc", want: []keyValue{{"team", "pay ments"}, {"k", "a,b=c"}}},
		{name: "empty value", in: "a=", want: []keyValue{{"a", ""}}},
		{name: "value with =", in: "a=b=c", want: []keyValue{{"a", "b=c"}}},
		{name: "no =", in: "a=b,novalue", wantErr: `entry "novalue" is not key=value`},
		{name: "no key", in: "=v", wantErr: `entry "=v" is not key=value`},
		{name: "bad escape", in: "k=%zz", wantErr: `value of "k"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKeyValues("VAR", tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "VAR: "+tt.wantErr) {
					t.Fatalf("got error %v, want ErrInvalidConfig naming VAR and %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestBadOTelEnvironmentIsRejected(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{name: "resource entry", env: map[string]string{EnvResourceAttributes: "team"}, wantErr: EnvResourceAttributes},
		{name: "header name", env: map[string]string{EnvOTLPHeaders: "bad header=x"}, wantErr: EnvOTLPHeaders + `: "bad header" is not a header name`},
		{name: "header value", env: map[string]string{EnvOTLPTracesHeaders: "x-a=1%0D%0AHost:%20evil"}, wantErr: EnvOTLPTracesHeaders},
		{name: "queue zero", env: map[string]string{EnvSpanQueueSize: "0"}, wantErr: EnvSpanQueueSize + `="0"`},
		{name: "queue word", env: map[string]string{EnvLogQueueSize: "many"}, wantErr: EnvLogQueueSize},
		{name: "queue huge", env: map[string]string{EnvSpanQueueSize: "100000000"}, wantErr: EnvSpanQueueSize},
		{name: "batch above queue", env: map[string]string{EnvLogQueueSize: "100", EnvLogBatchSize: "101"}, wantErr: EnvLogBatchSize + `="101" is not a whole number from 1 to the queue's size, 100`},
		{name: "batch zero", env: map[string]string{EnvSpanBatchSize: "0"}, wantErr: EnvSpanBatchSize},
		{name: "delay word", env: map[string]string{EnvSpanScheduleDelay: "5s"}, wantErr: EnvSpanScheduleDelay + `="5s" is not a number of milliseconds`},
		{name: "delay too long", env: map[string]string{EnvLogScheduleDelay: "3600001"}, wantErr: EnvLogScheduleDelay},
		{name: "grpc", env: map[string]string{EnvOTLPEndpoint: "http://col:4317", EnvOTLPProtocol: "grpc"}, wantErr: EnvOTLPProtocol + "=grpc: the agent exports OTLP over HTTP only"},
		{name: "logs protocol", env: map[string]string{EnvOTLPLogsEndpoint: "http://col:4317/v1/logs", EnvOTLPLogsProtocol: "grpc"}, wantErr: EnvOTLPLogsProtocol + "=grpc"},
		{name: "logs endpoint", env: map[string]string{EnvOTLPLogsEndpoint: "col:4318/v1/logs"}, wantErr: "logs endpoint"},
		{name: "logs header", env: map[string]string{EnvOTLPLogsHeaders: "a b=1"}, wantErr: EnvOTLPLogsHeaders + `: "a b" is not a header name`},
		{name: "logs timeout", env: map[string]string{EnvOTLPLogsTimeout: "-1"}, wantErr: EnvOTLPLogsTimeout},
		{name: "traces protocol wins", env: map[string]string{EnvOTLPTracesEndpoint: "http://col:4317/v1/traces", EnvOTLPProtocol: "http/protobuf", EnvOTLPTracesProtocol: "grpc"}, wantErr: EnvOTLPTracesProtocol},
		{name: "unknown protocol", env: map[string]string{EnvOTLPEndpoint: "http://col:4318", EnvOTLPProtocol: "thrift"}, wantErr: `"thrift" is not an OTLP protocol`},
		{name: "timeout word", env: map[string]string{EnvOTLPTimeout: "10s"}, wantErr: EnvOTLPTimeout + `="10s" is not a number of milliseconds`},
		{name: "timeout zero", env: map[string]string{EnvOTLPTracesTimeout: "0"}, wantErr: EnvOTLPTracesTimeout},
		{name: "disabled yes", env: map[string]string{EnvSDKDisabled: "yes"}, wantErr: EnvSDKDisabled + `="yes" is neither true nor false`},
		{name: "b3 propagator", env: map[string]string{EnvPropagators: "tracecontext,b3"}, wantErr: EnvPropagators + `: "b3" is not supported by the agent (tracecontext, baggage or none)`},
		{name: "empty propagator", env: map[string]string{EnvPropagators: "tracecontext,,baggage"}, wantErr: EnvPropagators + `="tracecontext,,baggage" has an empty entry`},
		{name: "none with others", env: map[string]string{EnvPropagators: "none,baggage"}, wantErr: EnvPropagators + `="none,baggage" lists none with other propagators`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New("svc", withEnv(func(k string) string { return tt.env[k] }), WithLocalLog(io.Discard))
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want ErrInvalidConfig naming %s", err, tt.wantErr)
			}
		})
	}
}

// TestOTLPProtocolOnlyChecksEndpointsFromTheEnvironment: a gRPC setting
// meant for other exporters in the process does not stop an agent that
// exports to its control plane or to an endpoint given as an option.
func TestOTLPProtocolOnlyChecksEndpointsFromTheEnvironment(t *testing.T) {
	env := map[string]string{wire.EnvURL: "http://cp:7070", EnvOTLPProtocol: "grpc"}
	for _, opts := range [][]Option{nil, {WithTracesEndpoint("http://col:4318/v1/traces")}} {
		if _, err := newConfig(append([]Option{withEnv(func(k string) string { return env[k] })}, opts...)); err != nil {
			t.Errorf("options %d: got %v, want nil", len(opts), err)
		}
	}
	env[EnvOTLPProtocol] = "http/json"
	env[EnvOTLPEndpoint] = "http://col:4318"
	if _, err := newConfig([]Option{withEnv(func(k string) string { return env[k] })}); err != nil {
		t.Errorf("http/json: got %v, want nil (the agent sends protobuf, which OTLP/HTTP receivers take)", err)
	}
}

func TestQueueSizesFromEnvironment(t *testing.T) {
	env := map[string]string{EnvSpanQueueSize: "100", EnvLogQueueSize: " 300 "}
	cfg, err := newConfig([]Option{withEnv(func(k string) string { return env[k] })})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.spanQueue != 100 || cfg.logQueue != 300 {
		t.Errorf("queues: got %d spans, %d logs; want 100 and 300", cfg.spanQueue, cfg.logQueue)
	}
	if got, want := cfg.spanBatch.settings(cfg.spanQueue), (batch.Settings{Size: 100, BatchSize: batchSize, Interval: flushInterval}); got != want {
		t.Errorf("span batches by default: got %+v, want %+v", got, want)
	}
	env[EnvLogBatchSize], env[EnvLogScheduleDelay] = "50", "250"
	cfg, err = newConfig([]Option{withEnv(func(k string) string { return env[k] })})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.logBatch.settings(cfg.logQueue), (batch.Settings{Size: 300, BatchSize: 50, Interval: 250 * time.Millisecond}); got != want {
		t.Errorf("log batches: got %+v, want %+v", got, want)
	}
	delete(env, EnvLogBatchSize)
	cfg, err = newConfig([]Option{withEnv(func(k string) string { return env[k] }), WithQueueSize(7, 9)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.spanQueue != 7 || cfg.logQueue != 9 {
		t.Errorf("queues with WithQueueSize: got %d and %d, want the option's 7 and 9", cfg.spanQueue, cfg.logQueue)
	}
}

// collector is a third-party OTLP/HTTP traces endpoint that records the
// headers and resources it receives.
// collector is an OTLP/HTTP receiver: what it keeps of span exports
// (headers, resources) and of log exports (headers, requests).
type collector struct {
	*httptest.Server
	mu         sync.Mutex
	headers    []http.Header
	resources  [][]*commonpb.KeyValue
	logHeaders []http.Header
	logs       []*collogs.ExportLogsServiceRequest
}

func newCollector(t *testing.T) *collector {
	c := newUnstartedCollector(t)
	c.Start()
	return c
}

// newUnstartedCollector returns a collector to start with Start or
// StartTLS.
func newUnstartedCollector(t *testing.T) *collector {
	c := &collector{}
	c.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.HasSuffix(r.URL.Path, wire.PathLogs) {
			var req collogs.ExportLogsServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			c.logHeaders = append(c.logHeaders, r.Header.Clone())
			c.logs = append(c.logs, &req)
			return
		}
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.headers = append(c.headers, r.Header.Clone())
		for _, rs := range req.GetResourceSpans() {
			c.resources = append(c.resources, rs.GetResource().GetAttributes())
		}
	}))
	t.Cleanup(c.Close)
	return c
}

func stringAttrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	return m
}

// TestOTelEnvironment checks OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
// and OTEL_EXPORTER_OTLP_HEADERS end to end: spans go to a third-party
// collector with the headers and the resource, logs to the control plane
// with the same resource, and the agent's own attributes win.
func TestOTelEnvironment(t *testing.T) {
	col := newCollector(t)
	cp := newFakeControlPlane(t)
	env := map[string]string{
		wire.EnvURL:           cp.URL,
		wire.EnvToken:         "pilothouse-secret",
		EnvOTLPTracesEndpoint: col.URL + "/v1/traces",
		EnvServiceName:        "orders",
		EnvResourceAttributes: "deployment.environment=prod,team=pay%20ments,service.name=not-this,service.instance.id=nor-this",
		EnvOTLPHeaders:        "x-tenant=shop,api-key=s%3Dcret",
	}
	a, err := New("", withEnv(func(k string) string { return env[k] }), WithLocalLog(io.Discard),
		WithInstanceID("orders-1"), WithHeartbeatInterval(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if a.Service() != "orders" {
		t.Errorf("service: got %q, want %s's orders", a.Service(), EnvServiceName)
	}
	r := newEngine(a)
	serve(t, r, http.MethodGet, "/users/1", nil)
	shutdown(t, a)

	wantRes := map[string]string{"service.name": "orders", wire.AttrInstanceID: "orders-1",
		"deployment.environment": "prod", "team": "pay ments"}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.headers) == 0 {
		t.Fatal("the collector received no spans")
	}
	h := col.headers[0]
	if h.Get("X-Tenant") != "shop" || h.Get("Api-Key") != "s=cret" {
		t.Errorf("collector headers: got x-tenant %q, api-key %q; want shop and s=cret", h.Get("X-Tenant"), h.Get("Api-Key"))
	}
	if auth := h.Get(wire.HeaderAuthorization); auth != "" {
		t.Errorf("collector Authorization: got %q, want none (the Pilothouse token goes to the control plane only)", auth)
	}
	if got := stringAttrs(col.resources[0]); !reflect.DeepEqual(got, wantRes) {
		t.Errorf("span resource: got %v, want %v", got, wantRes)
	}

	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.logs) == 0 {
		t.Fatal("the control plane received no logs")
	}
	if got := stringAttrs(cp.logs[0].GetResourceLogs()[0].GetResource().GetAttributes()); !reflect.DeepEqual(got, wantRes) {
		t.Errorf("log resource: got %v, want %v", got, wantRes)
	}
}

// TestLogsToAnOTLPEndpoint: with the logs variables set, log records go
// to that endpoint with its headers and without the Pilothouse token,
// while spans still go to the control plane.
func TestLogsToAnOTLPEndpoint(t *testing.T) {
	col := newCollector(t)
	cp := newFakeControlPlane(t)
	env := map[string]string{
		wire.EnvURL:         cp.URL,
		wire.EnvToken:       "pilothouse-secret",
		EnvOTLPLogsEndpoint: col.URL + wire.PathLogs,
		EnvOTLPLogsHeaders:  "x-tenant=shop",
		EnvOTLPHeaders:      "x-general=1",
	}
	a, err := New("orders", withEnv(func(k string) string { return env[k] }), WithLocalLog(io.Discard), WithHeartbeatInterval(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, newEngine(a), http.MethodGet, "/users/1", nil)
	shutdown(t, a)

	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.logs) == 0 || len(col.headers) != 0 {
		t.Fatalf("collector: got %d log and %d span exports, want logs only", len(col.logs), len(col.headers))
	}
	h := col.logHeaders[0]
	if h.Get("X-Tenant") != "shop" || h.Get("X-General") != "" {
		t.Errorf("log export headers: got x-tenant %q x-general %q, want %s's shop only (the specific variable wins)", h.Get("X-Tenant"), h.Get("X-General"), EnvOTLPLogsHeaders)
	}
	if auth := h.Get(wire.HeaderAuthorization); auth != "" {
		t.Errorf("log export Authorization: got %q, want none", auth)
	}
	var msgs []string
	for _, rl := range col.logs[0].GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			for _, rec := range sl.GetLogRecords() {
				msgs = append(msgs, rec.GetBody().GetStringValue())
			}
		}
	}
	if !slices.Contains(msgs, "loading user") {
		t.Errorf("log records at the collector: got %q, want the handler's line", msgs)
	}

	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.traces) == 0 || len(cp.logs) != 0 {
		t.Errorf("control plane: got %d span and %d log exports, want spans only", len(cp.traces), len(cp.logs))
	}
}

// TestSDKDisabled: OTEL_SDK_DISABLED=true stops span and log export, and
// nothing else: requests still get IDs and heartbeats still go out.
func TestSDKDisabled(t *testing.T) {
	cp := newFakeControlPlane(t)
	env := map[string]string{wire.EnvURL: cp.URL, EnvSDKDisabled: "TRUE"}
	a, err := New("orders", withEnv(func(k string) string { return env[k] }), WithLocalLog(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	r := newEngine(a)
	if w := serve(t, r, http.MethodGet, "/users/1", nil); w.Header().Get(wire.HeaderRequestID) == "" {
		t.Error("response: no request ID, want one")
	}
	shutdown(t, a)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.traces) != 0 || len(cp.logs) != 0 {
		t.Errorf("exports: got %d span and %d log requests, want none", len(cp.traces), len(cp.logs))
	}
	if len(cp.heartbeats) == 0 {
		t.Error("heartbeats: got none, want the final beat at least")
	}
}

// TestExportTimeoutFromEnvironment: the OTLP timeout variables bound span
// exports only, and never override a client given with WithHTTPClient.
func TestExportTimeoutFromEnvironment(t *testing.T) {
	env := map[string]string{wire.EnvURL: "http://127.0.0.1:1", EnvOTLPTimeout: "9000", EnvOTLPTracesTimeout: "1500"}
	getenv := withEnv(func(k string) string { return env[k] })
	spanClient := func(a *Agent) *http.Client { return a.spans.exp.(*spanExporter).post.client }

	a, err := New("svc", getenv, WithLocalLog(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, a)
	if got := spanClient(a).Timeout; got != 1500*time.Millisecond {
		t.Errorf("span export timeout: got %s, want %s's 1.5s", got, EnvOTLPTracesTimeout)
	}
	if got := a.cfg.httpClient.Timeout; got != DefaultExportTimeout {
		t.Errorf("heartbeat client timeout: got %s, want the default %s", got, DefaultExportTimeout)
	}

	own := &http.Client{Timeout: 42 * time.Second}
	b, err := New("svc", getenv, WithLocalLog(io.Discard), WithHTTPClient(own))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, b)
	if got := spanClient(b).Timeout; got != 42*time.Second {
		t.Errorf("with WithHTTPClient: got %s, want the client's own 42s", got)
	}
}

func TestNoServiceName(t *testing.T) {
	_, err := New(" ", withEnv(noEnv))
	if !errors.Is(err, ErrNoService) || !strings.Contains(err.Error(), EnvServiceName) {
		t.Fatalf("got %v, want ErrNoService naming %s", err, EnvServiceName)
	}
}

// FuzzParseKeyValues: any value of OTEL_RESOURCE_ATTRIBUTES or the OTLP
// headers variables is parsed or refused with ErrInvalidConfig, never a
// panic, and every parsed key is non-empty and trimmed.
func FuzzParseKeyValues(f *testing.F) {
	for _, s := range []string{"", "a=b", " a = b ,, c=d ,", "k=%zz", "=v", "novalue", "a=b=c", "x=%E2%82%AC"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kvs, err := parseKeyValues("VAR", s)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v is not ErrInvalidConfig", err)
			}
			return
		}
		for _, kv := range kvs {
			if kv.key == "" || kv.key != strings.TrimSpace(kv.key) || strings.Contains(kv.key, ",") {
				t.Fatalf("key %q from %q", kv.key, s)
			}
		}
	})
}

func TestBuildVersion(t *testing.T) {
	info := func(version string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: version}, Settings: settings}, true
		}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123"}
	tests := []struct {
		name string
		read func() (*debug.BuildInfo, bool)
		want string
	}{
		{"module version", info("v1.4.2", rev), "v1.4.2"},
		{"local build with a revision", info("(devel)", rev), "0123456789ab"},
		{"modified tree", info("(devel)", rev, debug.BuildSetting{Key: "vcs.modified", Value: "true"}), "0123456789ab+dirty"},
		{"nothing known", info("(devel)"), ""},
		{"no build information", func() (*debug.BuildInfo, bool) { return nil, false }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildVersion(tt.read); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAddressFromEnvironment(t *testing.T) {
	env := map[string]string{wire.EnvAddress: " 10.1.2.3:8080 "}
	getenv := withEnv(func(k string) string { return env[k] })
	cfg, err := newConfig([]Option{getenv})
	if err != nil || cfg.address != "10.1.2.3:8080" {
		t.Errorf("from %s: got %q (%v), want 10.1.2.3:8080", wire.EnvAddress, cfg.address, err)
	}
	if cfg, _ := newConfig([]Option{getenv, WithAddress("orders:9000")}); cfg.address != "orders:9000" {
		t.Errorf("WithAddress: got %q, want the option's orders:9000", cfg.address)
	}
	for _, bad := range []string{"10.1.2.3", ":8080", "orders:"} {
		env[wire.EnvAddress] = bad
		if _, err := newConfig([]Option{getenv}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), wire.EnvAddress) {
			t.Errorf("%s=%q: got %v, want ErrInvalidConfig naming the variable", wire.EnvAddress, bad, err)
		}
	}
}
