package testnet

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NetNS creates a named network namespace prefix<random> with lo up, which
// t's cleanup deletes, and returns its name (its path is NetNSPath).
func NetNS(t testing.TB, prefix string) string {
	t.Helper()
	ctx := context.Background()
	name, err := New(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Delete(ctx, name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// NetNSPath is the bind mount that pins the named network namespace.
func NetNSPath(name string) string { return Path(name) }

// MustRun runs a host command and returns its combined output, failing t
// when it fails.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NetlinkIn returns a netlink handle inside the named network namespace,
// closed by t's cleanup.
func NetlinkIn(t testing.TB, name string) *netlink.Handle {
	t.Helper()
	nh, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nh.Close() })
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}
