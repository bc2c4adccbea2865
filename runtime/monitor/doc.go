// Package monitor is Veil's Prometheus exporter, `veil monitor`: one per
// node, it discovers the sandboxes under state_dir on every scrape and
// gathers each one's figures through runtime/inspect (helper processes
// from /proc, the sandbox cgroup, the guest through a second agent
// connection), each sandbox bounded in time and none blocking another.
// A sandbox that went away is simply not listed at the next scrape.
//
// It owns the metric names, their labels and their help (metrics.go;
// testdata/metrics.golden pins them), the collector (collector.go) and
// the HTTP server (server.go). docs/metrics.md documents what it
// exposes.
package monitor
