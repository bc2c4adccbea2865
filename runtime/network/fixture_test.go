package network

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testNetNS creates a named network namespace (lo up) that t's cleanup
// deletes, and returns its name.
func testNetNS(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := prefix + hex.EncodeToString(b)
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", name, err, out)
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name
}

func nsPath(name string) string { return "/run/netns/" + name }

// ip runs ip(8) and returns its output.
func ip(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, "ip", args...)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
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
	b.WriteString(run(t, "tc", "-n", ns, "qdisc", "show"))
	b.WriteString(run(t, "nsenter", "--net=/run/netns/"+ns, "iptables", "-t", "nat", "-S"))
	for _, l := range strings.Split(strings.TrimSpace(ip(t, "-n", ns, "-o", "link")), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		dev := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		// tc prints "parent ffff: " or not depending on what was added
		// before; it is the same filter.
		b.WriteString(strings.ReplaceAll(run(t, "tc", "-n", ns, "filter", "show", "dev", dev, "ingress"), "parent ffff: ", ""))
	}
	return b.String()
}

// handleIn is a netlink handle inside namespace ns, closed by t's cleanup.
func handleIn(t *testing.T, ns string) *netlink.Handle {
	t.Helper()
	nh, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nh.Close() })
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}
