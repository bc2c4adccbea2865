package harness

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/veil-runtime/veil/test/testnet"
)

// NetNS creates a named network namespace (see testnet.NetNS).
func NetNS(t testing.TB, prefix string) string { t.Helper(); return testnet.NetNS(t, prefix) }

// NetNSPath is the bind mount that pins the named network namespace.
func NetNSPath(name string) string { return testnet.NetNSPath(name) }

// MustRun runs a host command (see testnet.MustRun).
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	return testnet.MustRun(t, name, args...)
}

// NetlinkIn returns a netlink handle inside the named network namespace
// (see testnet.NetlinkIn).
func NetlinkIn(t testing.TB, name string) *netlink.Handle {
	t.Helper()
	return testnet.NetlinkIn(t, name)
}
