// Package agent holds the integration test of the host runtime against a
// real guest: it boots VMs with runtime/sandbox and drives veil-agent's
// API directly (no containerd, no shim).
package agent
