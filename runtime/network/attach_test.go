package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/test/integration"
	"github.com/veil-runtime/veil/test/testnet"
)

// Addresses of the fixtures: private ranges unlikely to clash, and only
// ever inside namespaces the tests create.
const (
	mac0 = "02:00:0a:d5:07:02"
	mac1 = "02:00:0a:d5:08:02"
)

// podVeth creates a veth pair like CNI does: dev inside pod (with mac and
// mtu), its peer hostDev in host; both up.
func podVeth(t *testing.T, pod, host, dev, hostDev, mac, mtu string) {
	t.Helper()
	ip(t, "-n", host, "link", "add", hostDev, "mtu", mtu, "type", "veth", "peer", "name", dev, "netns", pod, "address", mac, "mtu", mtu)
	ip(t, "-n", host, "link", "set", hostDev, "up")
	ip(t, "-n", pod, "link", "set", dev, "up")
}

func TestAttach(t *testing.T) {
	integration.Require(t, integration.Root)
	cases := []struct {
		name string
		// setup shapes the pod namespace; host is the peer namespace.
		setup    func(t *testing.T, pod, host string)
		wantNICs []NIC
		wantReq  *api.SetupNetworkRequest
	}{
		{
			name: "veth with IPv4, default route and static neighbour",
			setup: func(t *testing.T, pod, host string) {
				podVeth(t, pod, host, "eth0", "vh0", mac0, "1450")
				ip(t, "-n", pod, "addr", "add", "10.213.7.2/24", "dev", "eth0")
				ip(t, "-n", pod, "route", "add", "default", "via", "10.213.7.1")
				ip(t, "-n", pod, "neigh", "add", "10.213.7.9", "lladdr", "02:00:0a:d5:07:09", "dev", "eth0", "nud", "permanent")
			},
			wantNICs: []NIC{{Interface: "eth0", Tap: "tap0_veil", MAC: mac0}},
			wantReq: &api.SetupNetworkRequest{
				Interfaces: []*api.Interface{{Name: "eth0", Mac: mac0, Mtu: 1450, Addresses: []*api.IPAddress{{Cidr: "10.213.7.2/24"}}}},
				Routes: []*api.Route{
					{Destination: "10.213.7.0/24", Device: "eth0", Source: "10.213.7.2", Scope: unix.RT_SCOPE_LINK},
					{Gateway: "10.213.7.1", Device: "eth0"},
				},
				Neighbors: []*api.Neighbor{{Ip: "10.213.7.9", Mac: "02:00:0a:d5:07:09", Device: "eth0"}},
			},
		},
		{
			name: "two interfaces, one dual-stack with an IPv6 default route",
			setup: func(t *testing.T, pod, host string) {
				podVeth(t, pod, host, "eth0", "vh0", mac0, "1500")
				podVeth(t, pod, host, "net1", "vh1", mac1, "1400")
				ip(t, "-n", pod, "addr", "add", "10.213.7.2/24", "dev", "eth0")
				ip(t, "-n", pod, "addr", "add", "10.213.8.2/24", "dev", "net1")
				ip(t, "-n", pod, "addr", "add", "fd13:8::2/64", "dev", "net1", "nodad")
				ip(t, "-n", pod, "route", "add", "10.99.0.0/16", "via", "10.213.8.1")
				ip(t, "-n", pod, "-6", "route", "add", "default", "via", "fd13:8::1", "dev", "net1")
			},
			wantNICs: []NIC{{Interface: "eth0", Tap: "tap0_veil", MAC: mac0}, {Interface: "net1", Tap: "tap1_veil", MAC: mac1}},
			wantReq: &api.SetupNetworkRequest{
				Interfaces: []*api.Interface{
					{Name: "eth0", Mac: mac0, Mtu: 1500, Addresses: []*api.IPAddress{{Cidr: "10.213.7.2/24"}}},
					{Name: "net1", Mac: mac1, Mtu: 1400, Addresses: []*api.IPAddress{{Cidr: "10.213.8.2/24"}, {Cidr: "fd13:8::2/64"}}},
				},
				Routes: []*api.Route{
					{Destination: "10.213.7.0/24", Device: "eth0", Source: "10.213.7.2", Scope: unix.RT_SCOPE_LINK},
					{Destination: "10.213.8.0/24", Device: "net1", Source: "10.213.8.2", Scope: unix.RT_SCOPE_LINK},
					{Destination: "fd13:8::/64", Device: "net1"},
					{Destination: "10.99.0.0/16", Gateway: "10.213.8.1", Device: "net1"},
					{Gateway: "fd13:8::1", Device: "net1"},
				},
			},
		},
		{
			name:    "no pod interface",
			setup:   func(t *testing.T, pod, host string) {},
			wantReq: &api.SetupNetworkRequest{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod, host := testnet.NetNS(t, "veil-pod-"), testnet.NetNS(t, "veil-host-")
			tc.setup(t, pod, host)
			before := snapshot(t, pod)
			ctx := context.Background()

			e, err := Attach(ctx, testnet.NetNSPath(pod))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Detach(ctx) })
			if !slices.Equal(e.NICs, tc.wantNICs) {
				t.Errorf("NICs = %+v, want %+v", e.NICs, tc.wantNICs)
			}
			h := testnet.NetlinkIn(t, pod)
			want := proto.Clone(tc.wantReq).(*api.SetupNetworkRequest)
			if len(e.NICs) > 0 {
				// The first NIC also carries the localhost forwarding: the
				// guest's end of the link-local /30 and the tap's MAC.
				tap, err := h.LinkByName(e.NICs[0].Tap)
				if err != nil {
					t.Fatal(err)
				}
				want.Interfaces[0].Addresses = append(want.Interfaces[0].Addresses, &api.IPAddress{Cidr: "169.254.77.2/30"})
				want.Neighbors = append(want.Neighbors, &api.Neighbor{Ip: "169.254.77.1", Mac: tap.Attrs().HardwareAddr.String(), Device: want.Interfaces[0].Name})
				nat := testnet.MustRun(t, "nsenter", "--net="+testnet.NetNSPath(pod), "iptables", "-t", "nat", "-S")
				for _, rule := range []string{"-j DNAT --to-destination 169.254.77.2", "-j SNAT --to-source 169.254.77.1"} {
					if !strings.Contains(nat, rule) {
						t.Errorf("nat table lacks %q:\n%s", rule, nat)
					}
				}
			}
			assertRequest(t, e.Request, want)

			for _, nic := range e.NICs {
				pl, err := h.LinkByName(nic.Interface)
				if err != nil {
					t.Fatal(err)
				}
				assertTap(t, h, nic.Tap, pl.Attrs().MTU)
				assertRedirect(t, h, nic.Interface, nic.Tap)
				assertRedirect(t, h, nic.Tap, nic.Interface)
			}

			for i := range 2 {
				if err := e.Detach(ctx); err != nil {
					t.Fatalf("Detach #%d: %v", i+1, err)
				}
				if after := snapshot(t, pod); after != before {
					t.Fatalf("after Detach #%d the namespace differs:\nbefore:\n%s\nafter:\n%s", i+1, before, after)
				}
			}
		})
	}
}

// TestAttachOwned: taps made for a uid are its own (owner and group of
// the same number), so that a process with that uid and no capability, a
// jailed Cloud Hypervisor, attaches to them by name as CH does; another
// uid cannot, nor can that uid attach to Attach's root-owned taps.
func TestAttachOwned(t *testing.T) {
	integration.Require(t, integration.Root)
	const uid, other = 3_999_200_001, 3_999_200_002
	cases := []struct {
		name    string
		owner   uint32 // 0: Attach
		opener  uint32
		wantErr error
	}{
		{name: "its owner attaches", owner: uid, opener: uid},
		{name: "another uid is refused", owner: uid, opener: other, wantErr: unix.EPERM},
		{name: "Attach's taps are root's", opener: uid, wantErr: unix.EPERM},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod, host := testnet.NetNS(t, "veil-pod-"), testnet.NetNS(t, "veil-host-")
			podVeth(t, pod, host, "eth0", "vh0", mac0, "1500")
			ctx := context.Background()
			var e *Endpoints
			var err error
			if tc.owner == 0 {
				e, err = Attach(ctx, testnet.NetNSPath(pod))
			} else {
				e, err = AttachOwned(ctx, testnet.NetNSPath(pod), tc.owner)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Detach(ctx) })
			tapName := e.NICs[0].Tap
			l, err := testnet.NetlinkIn(t, pod).LinkByName(tapName)
			if err != nil {
				t.Fatal(err)
			}
			if tap := l.(*netlink.Tuntap); tap.Owner != tc.owner || tap.Group != tc.owner {
				t.Errorf("tap %s owned by %d:%d, want %d:%d", tapName, tap.Owner, tap.Group, tc.owner, tc.owner)
			}
			if err := attachAs(testnet.NetNSPath(pod), tapName, tc.opener); !errors.Is(err, tc.wantErr) {
				t.Errorf("uid %d attaching to %s: %v, want %v", tc.opener, tapName, err, tc.wantErr)
			}
		})
	}
}

// attachAs attaches to the existing tap name in the namespace at nsPath
// as Cloud Hypervisor does (TUNSETIFF by name with its flags), from a
// thread that has switched to uid (and gid) and so lost every
// capability. /dev/net/tun is opened before the switch: its mode is the
// host's business, the tap's owner is what is tested. The thread is
// dropped afterwards.
func attachAs(nsPath, name string, uid uint32) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		errc <- func() error {
			ns, err := os.Open(nsPath)
			if err != nil {
				return err
			}
			defer func() { _ = ns.Close() }()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("setns: %w", err)
			}
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer func() { _ = unix.Close(fd) }()
			// This thread only (raw syscalls, not the process-wide
			// wrappers).
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
				return fmt.Errorf("setresgid: %w", e)
			}
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
				return fmt.Errorf("setresuid: %w", e)
			}
			ifr, err := unix.NewIfreq(name)
			if err != nil {
				return err
			}
			ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
			return unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}()
	}()
	return <-errc
}

func TestAttachErrors(t *testing.T) {
	integration.Require(t, integration.Root)
	notNS := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(notNS, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		// path returns the namespace path to attach.
		path    func(t *testing.T) string
		wantErr []string
	}{
		{
			name:    "missing namespace",
			path:    func(t *testing.T) string { return "/run/netns/veil-no-such-ns" },
			wantErr: []string{"/run/netns/veil-no-such-ns", "does not exist"},
		},
		{
			name:    "path is not a namespace",
			path:    func(t *testing.T) string { return notNS },
			wantErr: []string{notNS, "not a namespace"},
		},
		{
			name: "namespace already attached",
			path: func(t *testing.T) string {
				pod, host := testnet.NetNS(t, "veil-pod-"), testnet.NetNS(t, "veil-host-")
				podVeth(t, pod, host, "eth0", "vh0", mac0, "1500")
				ip(t, "-n", pod, "tuntap", "add", "tap0_veil", "mode", "tap")
				return testnet.NetNSPath(pod)
			},
			wantErr: []string{"already holds tap tap0_veil", "/run/netns/veil-pod-"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path(t)
			e, err := Attach(context.Background(), path)
			if err == nil {
				_ = e.Detach(context.Background())
				t.Fatalf("Attach(%s) succeeded", path)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestCleanup(t *testing.T) {
	integration.Require(t, integration.Root)
	cases := []struct {
		name string
		// setup shapes the pod namespace before Attach.
		setup func(t *testing.T, pod, host string)
		// crash damages the attached namespace like a crash midway would.
		crash func(t *testing.T, pod string)
	}{
		{
			name:  "everything left in place",
			setup: func(t *testing.T, pod, host string) {},
			crash: func(t *testing.T, pod string) {},
		},
		{
			name:  "tap deleted, its redirect filter left",
			setup: func(t *testing.T, pod, host string) {},
			crash: func(t *testing.T, pod string) { ip(t, "-n", pod, "link", "del", "tap0_veil") },
		},
		{
			name: "a foreign ingress filter survives",
			setup: func(t *testing.T, pod, host string) {
				testnet.MustRun(t, "tc", "-n", pod, "qdisc", "add", "dev", "eth0", "ingress")
				testnet.MustRun(t, "tc", "-n", pod, "filter", "add", "dev", "eth0", "ingress", "prio", "5", "protocol", "ip", "u32", "match", "u32", "0", "0", "flowid", "1:1")
			},
			crash: func(t *testing.T, pod string) {},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod, host := testnet.NetNS(t, "veil-pod-"), testnet.NetNS(t, "veil-host-")
			podVeth(t, pod, host, "eth0", "vh0", mac0, "1500")
			ip(t, "-n", pod, "addr", "add", "10.213.7.2/24", "dev", "eth0")
			tc.setup(t, pod, host)
			before := snapshot(t, pod)
			ctx := context.Background()
			if _, err := Attach(ctx, testnet.NetNSPath(pod)); err != nil {
				t.Fatal(err)
			}
			tc.crash(t, pod)
			for i := range 2 {
				if err := Cleanup(ctx, testnet.NetNSPath(pod)); err != nil {
					t.Fatalf("Cleanup #%d: %v", i+1, err)
				}
				if after := snapshot(t, pod); after != before {
					t.Fatalf("after Cleanup #%d the namespace differs:\nbefore:\n%s\nafter:\n%s", i+1, before, after)
				}
			}
		})
	}
	t.Run("namespace gone", func(t *testing.T) {
		if err := Cleanup(context.Background(), "/run/netns/veil-no-such-ns"); err != nil {
			t.Fatal(err)
		}
	})
}

// assertRequest compares requests; routes and neighbours in any order,
// except that every gateway route must follow every link route.
func assertRequest(t *testing.T, got, want *api.SetupNetworkRequest) {
	t.Helper()
	seenGW := false
	for _, r := range got.Routes {
		if r.Gateway != "" {
			seenGW = true
		} else if seenGW {
			t.Errorf("link route %v after a gateway route in %v", r, got.Routes)
		}
	}
	norm := func(r *api.SetupNetworkRequest) *api.SetupNetworkRequest {
		c := proto.Clone(r).(*api.SetupNetworkRequest)
		slices.SortFunc(c.Routes, func(a, b *api.Route) int { return strings.Compare(a.String(), b.String()) })
		slices.SortFunc(c.Neighbors, func(a, b *api.Neighbor) int { return strings.Compare(a.String(), b.String()) })
		return c
	}
	if g, w := norm(got), norm(want); !proto.Equal(g, w) {
		t.Errorf("request:\n got %v\nwant %v", g, w)
	}
}

// assertTap checks that name is an up, persistent, root-owned tap with
// the given MTU.
func assertTap(t *testing.T, h *netlink.Handle, name string, mtu int) {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("tap %s: %v", name, err)
	}
	tap, ok := l.(*netlink.Tuntap)
	if !ok {
		t.Fatalf("%s is a %s, not a tap", name, l.Type())
	}
	a := tap.Attrs()
	if tap.Mode != netlink.TUNTAP_MODE_TAP || tap.NonPersist || tap.Owner != 0 || a.MTU != mtu || a.Flags&(1<<0) == 0 {
		t.Errorf("tap %s: mode %v, non-persistent %v, owner %d, mtu %d (want %d), flags %v", name, tap.Mode, tap.NonPersist, tap.Owner, a.MTU, mtu, a.Flags)
	}
}

// assertRedirect checks that from's ingress has a filter redirecting
// every frame to to's egress.
func assertRedirect(t *testing.T, h *netlink.Handle, from, to string) {
	t.Helper()
	fl, err := h.LinkByName(from)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := h.LinkByName(to)
	if err != nil {
		t.Fatal(err)
	}
	filters, err := h.FilterList(fl, ingressHandle)
	if err != nil {
		t.Fatalf("filters of %s: %v", from, err)
	}
	for _, f := range filters {
		u, ok := f.(*netlink.U32)
		if !ok || u.Sel == nil || u.Attrs().Protocol != unix.ETH_P_ALL {
			continue
		}
		if len(u.Sel.Keys) != 1 || u.Sel.Keys[0].Mask != 0 {
			continue // not match-all
		}
		for _, a := range u.Actions {
			if m, ok := a.(*netlink.MirredAction); ok && m.MirredAction == netlink.TCA_EGRESS_REDIR && m.Ifindex == tl.Attrs().Index {
				return
			}
		}
	}
	t.Errorf("no match-all redirect %s -> %s among %d ingress filters", from, to, len(filters))
}
