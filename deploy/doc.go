// Package deploy holds the deployment files: the Dockerfile, Prometheus's
// scrape configuration and the Kubernetes manifests (k8s/). It has no Go
// API; its test checks the files parse and agree with each other and with
// docker-compose.yml.
package deploy
