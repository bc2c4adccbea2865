// Package testnet gives tests named network namespaces (NetNS, New,
// Delete), netlink handles inside them and host commands that must
// succeed. It is light (the standard library, netlink and netns), so the
// network unit tests use it without pulling in test/harness; the harness
// builds on it for containerd's namespace. It is test-only and never
// shipped.
package testnet
