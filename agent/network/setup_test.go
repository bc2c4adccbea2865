package network

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/test/integration"
	"github.com/veil-runtime/veil/test/testnet"
)

const (
	macA = "02:00:0a:d6:01:02"
	macB = "02:00:0a:d6:02:02"
)

// TestSetup applies requests inside a throwaway network namespace whose
// links stand in for the VM's NICs.
func TestSetup(t *testing.T) {
	integration.Require(t, integration.Root)
	full := validRequest()
	full.Routes = append(full.Routes, &api.Route{Destination: "10.215.0.0/16", Gateway: "10.214.1.254", Device: "eth0"})
	cases := []struct {
		name string
		// links creates the NICs in namespace ns.
		links func(t *testing.T, ns string)
		// setups are applied in order; the last one's result is checked.
		setups []*api.SetupNetworkRequest
		// want and notWant are substrings of `ip` output (see state).
		want, notWant []string
		// wantResolv is the resolver file's nameserver line ("": no file).
		wantResolv string
		wantErr    []string
	}{
		{
			name: "rename, MTU, addresses, routes, neighbour and DNS",
			links: func(t *testing.T, ns string) {
				ipCmd(t, "-n", ns, "link", "add", "nic0", "address", macA, "type", "veth", "peer", "name", "peer0")
			},
			setups: []*api.SetupNetworkRequest{full},
			want: []string{
				"eth0 " + macA + " mtu 1450 up",
				"inet 10.214.1.2/24", "inet6 fd14:1::2/64",
				"default via 10.214.1.1 dev eth0",
				"10.214.1.0/24 dev eth0 scope link src 10.214.1.2",
				"10.215.0.0/16 via 10.214.1.254 dev eth0",
				"default via fd14:1::1 dev eth0",
				"10.214.1.1 dev eth0 lladdr 02:00:0a:d6:01:01 PERMANENT",
				"lo  mtu 65536 up",
			},
			wantResolv: "nameserver 10.214.1.53",
		},
		{
			name: "two NICs swap names",
			links: func(t *testing.T, ns string) {
				ipCmd(t, "-n", ns, "link", "add", "eth0", "address", macB, "type", "veth", "peer", "name", "eth1", "address", macA)
			},
			setups: []*api.SetupNetworkRequest{{Interfaces: []*api.Interface{
				{Name: "eth0", Mac: macA, Addresses: []*api.IPAddress{{Cidr: "10.214.1.2/24"}}},
				{Name: "eth1", Mac: macB, Addresses: []*api.IPAddress{{Cidr: "10.214.2.2/24"}}},
			}}},
			want: []string{"eth0 " + macA + " mtu 1500 up", "eth1 " + macB + " mtu 1500 up", "eth0    inet 10.214.1.2/24", "eth1    inet 10.214.2.2/24"},
		},
		{
			name: "a second setup replaces the first",
			links: func(t *testing.T, ns string) {
				ipCmd(t, "-n", ns, "link", "add", "eth0", "address", macA, "type", "veth", "peer", "name", "peer0")
			},
			setups: []*api.SetupNetworkRequest{full, {
				Interfaces: []*api.Interface{{Name: "eth0", Mac: macA, Addresses: []*api.IPAddress{{Cidr: "10.214.3.2/24"}}}},
				Routes:     []*api.Route{{Gateway: "10.214.3.1", Device: "eth0"}},
			}},
			want:       []string{"inet 10.214.3.2/24", "default via 10.214.3.1 dev eth0"},
			notWant:    []string{"10.214.1.2", "fd14:1::2", "10.215.0.0/16", "fd14:1::1", "PERMANENT"},
			wantResolv: "nameserver 10.214.1.53",
		},
		{
			// A warm VM's NIC booted with its own MAC; the pod's replaces it.
			name: "NIC found by its warm MAC takes the pod's",
			links: func(t *testing.T, ns string) {
				ipCmd(t, "-n", ns, "link", "add", "nic0", "address", macB, "type", "veth", "peer", "name", "peer0")
			},
			setups: []*api.SetupNetworkRequest{{Interfaces: []*api.Interface{
				{Name: "eth0", Mac: macA, NicMac: macB, Addresses: []*api.IPAddress{{Cidr: "10.214.1.2/24"}}},
			}}},
			want:    []string{"eth0 " + macA + " mtu 1500 up", "eth0    inet 10.214.1.2/24"},
			notWant: []string{macB},
		},
		{
			name:    "NIC never appears",
			links:   func(t *testing.T, ns string) {},
			setups:  []*api.SetupNetworkRequest{{Interfaces: []*api.Interface{{Name: "eth0", Mac: macA}}}},
			wantErr: []string{"no NIC with the MAC of interface eth0 (" + macA + ")", "deadline exceeded", "links: lo"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := testNetNS(t)
			tc.links(t, ns)
			resolv := filepath.Join(t.TempDir(), "resolv.conf")
			c := New(Options{Handle: testnet.NetlinkIn(t, ns), ResolvConf: resolv, LinkTimeout: 500 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var err error
			for _, r := range tc.setups {
				if err = c.Setup(ctx, r); err != nil {
					break
				}
			}
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("Setup succeeded")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st := state(t, ns)
			for _, w := range tc.want {
				if !strings.Contains(st, w) {
					t.Errorf("missing %q in:\n%s", w, st)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(st, w) {
					t.Errorf("unexpected %q in:\n%s", w, st)
				}
			}
			b, rerr := os.ReadFile(resolv)
			switch {
			case tc.wantResolv == "" && rerr == nil:
				t.Errorf("resolv.conf written:\n%s", b)
			case tc.wantResolv != "" && !strings.Contains(string(b), tc.wantResolv+"\n"):
				t.Errorf("resolv.conf (%v) lacks %q:\n%s", rerr, tc.wantResolv, b)
			}
		})
	}
}

// state describes ns: one "name mac mtu N up|down" line per link, then
// addresses, routes and neighbours as ip(8) prints them.
func state(t *testing.T, ns string) string {
	t.Helper()
	h := testnet.NetlinkIn(t, ns)
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range links {
		a := l.Attrs()
		up := "down"
		if a.Flags&1 != 0 {
			up = "up"
		}
		b.WriteString(a.Name + " " + a.HardwareAddr.String() + " mtu " + strconv.Itoa(a.MTU) + " " + up + "\n")
	}
	for _, args := range [][]string{
		{"-o", "addr"}, {"route"}, {"-6", "route"}, {"neigh", "show", "nud", "permanent"},
	} {
		b.WriteString(ipCmd(t, append([]string{"-n", ns}, args...)...))
	}
	return b.String()
}

func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	return testnet.MustRun(t, "ip", args...)
}

// testNetNS creates a named network namespace that t's cleanup deletes,
// with lo down as a fresh namespace has it (Setup must bring it up).
func testNetNS(t *testing.T) string {
	t.Helper()
	ns := testnet.NetNS(t, "veil-guest-")
	ipCmd(t, "-n", ns, "link", "set", "lo", "down")
	return ns
}
