// Package api is the contract between a pod's shim and the node's metrics
// exporter (runtime/monitor): the ttrpc Telemetry service generated from
// telemetry.proto (telemetry.pb.go, telemetry_ttrpc.pb.go, produced by
// `make generate`), which the shim serves on the sandbox directory's
// statedir.ShimSocket.
package api
