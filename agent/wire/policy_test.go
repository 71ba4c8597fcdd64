package wire

import (
	"errors"
	"strings"
	"testing"
)

const goodPolicy = `{
  "service": "orders",
  "version": 3,
  "rate_limits": [{"id": "rl-1", "match": {"route": "/orders/:id", "method": "GET"}, "rate": 50, "burst": 10, "key": "header:X-Tenant", "scope": "cluster"}],
  "breakers": [{"id": "br-1", "target": "payments", "strategy": "error_ratio", "threshold": 0.5, "min_requests": 20, "window": "10s", "open_for": "5s", "half_open_probes": 3, "error_statuses": ["5xx", "429"], "fallback": {"status": 503, "body": "try later"}}],
  "degradations": [{"id": "dg-1", "description": "reports off", "match": {"route": "/reports/daily"}, "enabled": true, "fallback": {"status": 200, "content_type": "application/json", "body": "{}"}}],
  "routes": [{"id": "rt-1", "target": "payments", "subsets": [{"name": "stable", "version": "v1", "weight": 90}, {"name": "canary", "version": "v2", "weight": 10}], "overrides": [{"header": {"name": "X-Canary", "value": "1"}, "subset": "canary"}]}],
  "timeouts": [{"id": "to-1", "target": "inventory", "timeout": "800ms", "mode": "shadow"}]
}`

func TestDecodePolicyGood(t *testing.T) {
	p, err := DecodePolicy(strings.NewReader(goodPolicy))
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	if p.Breakers[0].Window.D().String() != "10s" || p.Timeouts[0].Mode != Shadow || p.RateLimits[0].Scope != ScopeCluster {
		t.Errorf("decoded wrongly: %+v", p)
	}
}

func TestDecodePolicyErrors(t *testing.T) {
	tests := []struct {
		name      string
		doc       string
		wantField string
	}{
		{name: "unknown field", doc: `{"service":"a","rate_limitz":[]}`, wantField: "rate_limitz"},
		{name: "unknown nested field", doc: `{"service":"a","rate_limits":[{"id":"x","rate":1,"bogus":1}]}`, wantField: "rate_limits[0].bogus"},
		{name: "unknown field in second rule", doc: `{"service":"a","degradations":[{"id":"x","enabled":true},{"id":"y","enabeld":true}]}`, wantField: "degradations[1].enabeld"},
		{name: "unknown field deep", doc: `{"service":"a","degradations":[{"id":"x","fallback":{"status":503,"bdy":"x"}}]}`, wantField: "degradations[0].fallback.bdy"},
		{name: "unknown field after known case-folded one", doc: `{"service":"a","Rate_Limits":[{"ID":"x","rate":1,"nope":2}]}`, wantField: "Rate_Limits[0].nope"},
		{name: "wrong type", doc: `{"service":"a","rate_limits":[{"id":"x","rate":"fast"}]}`, wantField: "rate_limits.rate"},
		{name: "missing service", doc: `{}`, wantField: "service"},
		{name: "zero rate", doc: `{"service":"a","rate_limits":[{"id":"x","rate":0}]}`, wantField: "rate_limits[0].rate"},
		{name: "bad key", doc: `{"service":"a","rate_limits":[{"id":"x","rate":1,"key":"cookie"}]}`, wantField: "rate_limits[0].key"},
		{name: "bad id", doc: `{"service":"a","rate_limits":[{"id":"has space","rate":1}]}`, wantField: "rate_limits[0].id"},
		{name: "duplicate id", doc: `{"service":"a","timeouts":[{"id":"x","target":"b","timeout":"1s"},{"id":"x","target":"c","timeout":"1s"}]}`, wantField: "timeouts[1].id"},
		{name: "bad mode", doc: `{"service":"a","timeouts":[{"id":"x","target":"b","timeout":"1s","mode":"maybe"}]}`, wantField: "timeouts[0].mode"},
		{name: "bad duration", doc: `{"service":"a","timeouts":[{"id":"x","target":"b","timeout":"soon"}]}`, wantField: ""},
		{name: "breaker without target", doc: `{"service":"a","breakers":[{"id":"x","threshold":0.5}]}`, wantField: "breakers[0].target"},
		{name: "ratio above 1", doc: `{"service":"a","breakers":[{"id":"x","target":"b","threshold":1.5}]}`, wantField: "breakers[0].threshold"},
		{name: "slow call missing", doc: `{"service":"a","breakers":[{"id":"x","target":"b","strategy":"slow_call_ratio","threshold":0.5}]}`, wantField: "breakers[0].slow_call"},
		{name: "fractional consecutive", doc: `{"service":"a","breakers":[{"id":"x","target":"b","strategy":"consecutive_errors","threshold":2.5}]}`, wantField: "breakers[0].threshold"},
		{name: "bad error status", doc: `{"service":"a","breakers":[{"id":"x","target":"b","threshold":0.5,"error_statuses":["oops"]}]}`, wantField: "breakers[0].error_statuses[0]"},
		{name: "degradation without route", doc: `{"service":"a","degradations":[{"id":"x","match":{},"fallback":{"status":200}}]}`, wantField: "degradations[0].match.route"},
		{name: "degradation without status", doc: `{"service":"a","degradations":[{"id":"x","match":{"route":"/a"},"fallback":{}}]}`, wantField: "degradations[0].fallback.status"},
		{name: "route not a template", doc: `{"service":"a","degradations":[{"id":"x","match":{"route":"a"},"fallback":{"status":200}}]}`, wantField: "degradations[0].match.route"},
		{name: "lowercase method", doc: `{"service":"a","degradations":[{"id":"x","match":{"route":"/a","method":"get"},"fallback":{"status":200}}]}`, wantField: "degradations[0].match.method"},
		{name: "header injection", doc: `{"service":"a","degradations":[{"id":"x","match":{"route":"/a"},"fallback":{"status":200,"content_type":"a\r\nSet-Cookie: x"}}]}`, wantField: "degradations[0].fallback.content_type"},
		{name: "all weights zero", doc: `{"service":"a","routes":[{"id":"x","target":"b","subsets":[{"name":"s","weight":0}]}]}`, wantField: "routes[0].subsets"},
		{name: "override to unknown subset", doc: `{"service":"a","routes":[{"id":"x","target":"b","subsets":[{"name":"s","weight":1}],"overrides":[{"header":{"name":"X","value":"1"},"subset":"t"}]}]}`, wantField: "routes[0].overrides[0].subset"},
		{name: "trailing data", doc: `{"service":"a"} {}`, wantField: ""},
		{name: "not json", doc: `service: a`, wantField: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodePolicy(strings.NewReader(tt.doc))
			if err == nil {
				t.Fatal("got no error, want one")
			}
			es, ok := AsFieldErrors(err)
			if !ok {
				t.Fatalf("got %v, want field errors", err)
			}
			for _, e := range es {
				if e.Field == tt.wantField {
					return
				}
			}
			t.Errorf("got %v, want an error on field %q", es, tt.wantField)
		})
	}
}

func TestDecodePolicyTooLarge(t *testing.T) {
	doc := `{"service":"a","description":"` + strings.Repeat("x", MaxPolicyBytes) + `"}`
	if _, err := DecodePolicy(strings.NewReader(doc)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("got %v, want ErrTooLarge", err)
	}
}

func TestStatusMatches(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		code    int
		want    bool
	}{
		{name: "exact", pattern: "503", code: 503, want: true},
		{name: "exact miss", pattern: "503", code: 500, want: false},
		{name: "class", pattern: "5xx", code: 599, want: true},
		{name: "class miss", pattern: "5xx", code: 429, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StatusMatches(tt.pattern, tt.code); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzDecodePolicy(f *testing.F) {
	f.Add(goodPolicy)
	f.Add(`{"service":"a","rate_limits":[{"id":"x","rate":1e308,"burst":-1}]}`)
	f.Add(`{"service":"a","breakers":[{"id":"x","match":{"route":"/a"},"threshold":1,"window":-5}]}`)
	f.Add(`{"service":"a","routes":[{"id":"x","target":"b","subsets":[{"name":"s","weight":1}]}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := DecodePolicy(strings.NewReader(doc))
		if err != nil {
			if _, ok := AsFieldErrors(err); !ok && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		// Anything accepted must re-validate after a round trip.
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted policy fails validation: %v", err)
		}
	})
}

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add(`{"service":"orders","instance_id":"a","interval":"5s","routes":[{"method":"GET","route":"/x","requests":3,"errors":1}]}`)
	f.Add(`{"service":"","interval":5}`)
	f.Fuzz(func(t *testing.T, doc string) {
		h, err := DecodeHeartbeat(strings.NewReader(doc))
		if err == nil && h.Validate() != nil {
			t.Fatal("accepted heartbeat fails validation")
		}
	})
}
