package network

import (
	"strings"
	"testing"

	"github.com/veil-runtime/veil/test/testnet"
)

// ip runs ip(8) and returns its output.
func ip(t *testing.T, args ...string) string {
	t.Helper()
	return testnet.MustRun(t, "ip", args...)
}

// snapshot describes a namespace's links, addresses, routes, neighbours,
// qdiscs and filters, for comparing before and after.
func snapshot(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(ip(t, "-n", ns, "-br", "link"))
	b.WriteString(ip(t, "-n", ns, "-br", "addr"))
	b.WriteString(ip(t, "-n", ns, "route", "show", "table", "main"))
	b.WriteString(ip(t, "-n", ns, "-6", "route", "show", "table", "main"))
	b.WriteString(ip(t, "-n", ns, "neigh", "show", "nud", "permanent"))
	b.WriteString(testnet.MustRun(t, "tc", "-n", ns, "qdisc", "show"))
	b.WriteString(testnet.MustRun(t, "nsenter", "--net="+testnet.NetNSPath(ns), "iptables", "-t", "nat", "-S"))
	for _, l := range strings.Split(strings.TrimSpace(ip(t, "-n", ns, "-o", "link")), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		dev := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		// tc prints "parent ffff: " or not depending on what was added
		// before; it is the same filter.
		b.WriteString(strings.ReplaceAll(testnet.MustRun(t, "tc", "-n", ns, "filter", "show", "dev", dev, "ingress"), "parent ffff: ", ""))
	}
	return b.String()
}
