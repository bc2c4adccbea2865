// Package agentclient owns how the host connects to a sandbox's guest
// agent: dial the agent's vsock port through the sandbox's hybrid vsock
// socket, make the ttrpc client (with every request bounded by
// timeouts.agent_request when asked), ask Health and check the agent's
// API version. runtime/sandbox keeps one such connection for the
// sandbox's life; runtime/inspect opens a second one for the operator's
// veil tool.
package agentclient
