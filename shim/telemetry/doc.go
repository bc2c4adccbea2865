// Package telemetry owns what a pod's shim alone knows of its running
// sandbox for the node's metrics exporter (`veil monitor`,
// runtime/monitor): how long each agent request took, and how many stdio
// bytes the shim copied. (Starts go into state_dir's start journal,
// which outlives a shim whose start failed.) The
// Recorder collects them; Serve answers the Telemetry service (shim/api)
// on the sandbox directory's statedir.ShimSocket, owner-only.
package telemetry
