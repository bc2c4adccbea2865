// Package server is veil-agent's service edge: it implements the ttrpc
// api.AgentService on top of the container manager and the guest's
// sandbox-level duties, maps errors to gRPC status codes, and serves the
// agent and stream ports.
package server
