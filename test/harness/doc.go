// Package harness runs the pieces Veil's integration tests, demo and
// benchmarks need on the host: a private containerd in its own network
// namespace (Start; with Options.CRI, its CRI plugin with the runc and veil
// runtime handlers, CNI bridge networking and an in-process registry
// mirroring the public ones), the leak census, and CRI and network
// helpers. Its light half (the integration gate, the checkout's paths)
// lives in test/integration and its network namespaces in test/testnet,
// so unit tests need not import it; the same names here delegate there.
// It is test-only and never shipped.
package harness
