package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// yamlDocs parses every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// images finds every "image:" value in a decoded YAML tree.
func images(v any, out []string) []string {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "image" {
				out = append(out, s)
			}
			out = images(e, out)
		}
	case []any:
		for _, e := range x {
			out = images(e, out)
		}
	}
	return out
}

func TestImagesHaveNoRegistryHost(t *testing.T) {
	files, _ := filepath.Glob("k8s/*.yaml")
	files = append(files, "../docker-compose.yml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var all []string
			for _, d := range yamlDocs(t, f) {
				all = images(d, all)
			}
			for _, img := range all {
				// A registry host is a first path element with a dot or a port.
				if first, _, ok := strings.Cut(img, "/"); ok && strings.ContainsAny(first, ".:") {
					t.Errorf("image %q: got a registry host %q, want none", img, first)
				}
			}
		})
	}
}

func TestComposeMountsExistingFiles(t *testing.T) {
	docs := yamlDocs(t, "../docker-compose.yml")
	services, _ := docs[0]["services"].(map[string]any)
	want := []string{"consul", "controlplane-a", "controlplane-b", "gateway", "grafana", "jaeger", "loki", "prometheus"}
	for _, name := range want {
		if services[name] == nil {
			t.Errorf("service %s: got none, want it", name)
		}
	}
	for name, s := range services {
		svc, _ := s.(map[string]any)
		vols, _ := svc["volumes"].([]any)
		for _, v := range vols {
			src, _, _ := strings.Cut(v.(string), ":")
			if !strings.HasPrefix(src, "./") {
				continue // a named volume
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("%s: volume source %s: %v", name, src, err)
			}
		}
	}
	cmd := regexp.MustCompile(`--(consul|loki-url|otlp-forward-url)=`)
	for _, name := range []string{"controlplane-a", "controlplane-b"} {
		svc, _ := services[name].(map[string]any)
		args, _ := svc["command"].([]any)
		var found []string
		for _, a := range args {
			if m := cmd.FindStringSubmatch(a.(string)); m != nil {
				found = append(found, m[1])
			}
		}
		slices.Sort(found)
		if want := []string{"consul", "loki-url", "otlp-forward-url"}; !slices.Equal(found, want) {
			t.Errorf("%s flags: got %v, want %v", name, found, want)
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	docs := yamlDocs(t, "prometheus.yml")
	var cfg struct {
		ScrapeConfigs []struct {
			JobName        string           `yaml:"job_name"`
			MetricsPath    string           `yaml:"metrics_path"`
			ConsulSD       []map[string]any `yaml:"consul_sd_configs"`
			Authorization  map[string]any   `yaml:"authorization"`
			RelabelConfigs []map[string]any `yaml:"relabel_configs"`
			StaticConfigs  []map[string]any `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	raw, _ := yaml.Marshal(docs[0])
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	jobs := map[string]int{}
	for i, j := range cfg.ScrapeConfigs {
		jobs[j.JobName] = i
	}
	cp, ok := jobs["pilothouse-controlplane"]
	if !ok {
		t.Fatalf("jobs: got %v, want pilothouse-controlplane (the dashboards select it)", jobs)
	}
	if f := cfg.ScrapeConfigs[cp].Authorization["credentials_file"]; f == nil {
		t.Errorf("control plane job: got no bearer credentials_file, want one (/metrics needs the control plane's --metrics-token)")
	}
	ag, ok := jobs["pilothouse-agents"]
	if !ok {
		t.Fatalf("jobs: got %v, want pilothouse-agents", jobs)
	}
	a := cfg.ScrapeConfigs[ag]
	if len(a.ConsulSD) == 0 || a.MetricsPath != "/metrics" {
		t.Errorf("agents job: got consul_sd %v, path %q, want consul_sd_configs and /metrics", a.ConsulSD, a.MetricsPath)
	}
	serviceLabel := false
	for _, r := range a.RelabelConfigs {
		if r["target_label"] == "service" {
			serviceLabel = true
		}
	}
	if !serviceLabel {
		t.Errorf("agents job: got no relabelling to a service label, want one (the dashboards filter on it)")
	}
}

func TestK8sControlPlane(t *testing.T) {
	var kinds []string
	replicas := 0
	for _, d := range yamlDocs(t, "k8s/controlplane.yaml") {
		kinds = append(kinds, d["kind"].(string))
		if d["kind"] == "Deployment" {
			spec, _ := d["spec"].(map[string]any)
			replicas, _ = spec["replicas"].(int)
		}
	}
	if want := []string{"Deployment", "Service"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds: got %v, want %v", kinds, want)
	}
	if replicas != 2 {
		t.Errorf("replicas: got %d, want 2", replicas)
	}
	kust := yamlDocs(t, "k8s/kustomization.yaml")[0]
	for _, r := range kust["resources"].([]any) {
		if _, err := os.Stat(filepath.Join("k8s", r.(string))); err != nil {
			t.Errorf("kustomization resource %s: %v", r, err)
		}
	}
}
