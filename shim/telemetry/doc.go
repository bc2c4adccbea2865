// Package telemetry owns what a pod's shim alone knows of its sandbox
// for the node's metrics exporter (`veil monitor`, runtime/monitor): how
// the sandbox started (warm or cold, and each stage), how long each
// agent request took, and how many stdio bytes the shim copied. The
// Recorder collects them; Serve answers the Telemetry service (shim/api)
// on the sandbox directory's statedir.ShimSocket, owner-only.
package telemetry
