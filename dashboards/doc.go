// Package dashboards holds Pilothouse's Grafana dashboards (JSON) and the
// Grafana provisioning for its Prometheus, Loki and Jaeger data sources.
// It has no Go API: its test checks that every metric the dashboards
// query is one a real agent or control plane exports.
package dashboards
