// Package harness runs the pieces Veil's integration tests, demo and
// benchmarks need on the host: a private containerd in its own network
// namespace (Start; with Options.CRI, its CRI plugin with the runc and veil
// runtime handlers, CNI bridge networking and an in-process registry
// mirroring the public ones), and the locations of the checkout's build outputs and
// setup cache. It is test-only and never shipped.
package harness
