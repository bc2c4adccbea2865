// Package api is the contract between the host runtime and veil-agent: the
// ttrpc service generated from agent.proto (agent.pb.go, agent_ttrpc.pb.go,
// produced by `make generate`), the vsock ports the agent listens on, and
// the preamble that opens a stdio stream connection.
package api
