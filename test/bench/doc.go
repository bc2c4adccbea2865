// Package bench holds Veil's benchmarks (`make bench`): sandbox launch
// against a bare QEMU boot, `ctr run` latency against runc, container
// stdout throughput against the raw guest stream, and host memory per
// sandbox. Each reports its figures with b.ReportMetric and one log line.
// They need what `make setup build guest` produces and skip unless
// VEIL_INTEGRATION=1.
package bench
