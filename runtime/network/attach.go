package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containerd/log"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cleanup"
)

// TapSuffix ends the name of every tap device this package creates;
// Cleanup removes every tap whose name ends with it.
const TapSuffix = "_veil"

// NIC is one VM network device.
type NIC struct {
	// Interface is the pod interface the tap is bridged to (e.g. eth0).
	Interface string
	// Tap is the tap device in the pod's namespace; the VMM, running in
	// that namespace, opens it by name.
	Tap string
	// MAC is the pod interface's hardware address; the VM's NIC must get
	// it, so that the pod network sees the address it knows.
	MAC string
}

// Endpoints is a pod network namespace attached to taps for one VM.
type Endpoints struct {
	// NetNSPath is the pod's network namespace.
	NetNSPath string
	// NICs are the VM's network devices, in the order of Request's
	// interfaces.
	NICs []NIC
	// Request configures the same interfaces, routes and static
	// neighbours inside the guest (its DNS is left to the caller).
	Request *api.SetupNetworkRequest
}

// Attach creates a tap for every pod interface in the network namespace
// at netnsPath (every link with an Ethernet address that is neither
// loopback nor one of this package's taps), redirects traffic both ways
// between them, and describes the interfaces for the guest. A namespace
// without such interfaces gives Endpoints without NICs. On error nothing
// it created is left behind.
func Attach(ctx context.Context, netnsPath string) (*Endpoints, error) {
	return AttachOwned(ctx, netnsPath, 0)
}

// AttachOwned is Attach with taps that uid (and its gid of the same
// number) may open without privilege: a jailed VMM that opens its taps by
// name (Cloud Hypervisor). 0 makes them root's.
func AttachOwned(ctx context.Context, netnsPath string, uid uint32) (_ *Endpoints, retErr error) {
	n, links, err := openPodNetNS(netnsPath)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	return n.attach(ctx, links, func(_ int, name string, mtu int) (netlink.Link, string, error) {
		tap, err := n.createTap(name, mtu, uid)
		return tap, "", err
	})
}

// openPodNetNS opens the pod's namespace and lists its links; one of
// this package's taps there already is an error.
func openPodNetNS(netnsPath string) (*nsHandle, []netlink.Link, error) {
	n, err := openNetNS(netnsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("attach: %w", err)
	}
	links, err := n.nl.LinkList()
	if err != nil {
		n.Close()
		return nil, nil, fmt.Errorf("attach: netns %s: list links: %w", netnsPath, err)
	}
	for _, l := range links {
		if isTap(l) {
			n.Close()
			return nil, nil, fmt.Errorf("attach: netns %s already holds tap %s: another sandbox uses it, or a crashed one was not cleaned up", netnsPath, l.Attrs().Name)
		}
	}
	return n, links, nil
}

// tapMaker makes the tap named name for the i-th pod interface, with
// the interface's MTU, set up in the pod's namespace; nicMAC, when not
// empty, is the address the VM's NIC behind it has already.
type tapMaker func(i int, name string, mtu int) (tap netlink.Link, nicMAC string, err error)

// attach gives every pod interface among links a tap from makeTap,
// redirects traffic both ways between them, and describes the
// interfaces for the guest. On error nothing it made is left behind.
func (n *nsHandle) attach(ctx context.Context, links []netlink.Link, makeTap tapMaker) (_ *Endpoints, retErr error) {
	netnsPath := n.path
	e := &Endpoints{NetNSPath: netnsPath, Request: &api.SetupNetworkRequest{}}
	created := map[string]bool{}
	var undo cleanup.Stack
	defer undo.OnError(ctx, &retErr)
	undo.Push("network attach in "+netnsPath, func(ctx context.Context) error { return n.teardown(ctx, created) })
	var linkRoutes, gwRoutes []*api.Route
	for i, l := range podLinks(links) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("attach: netns %s: %w", netnsPath, err)
		}
		name := l.Attrs().Name
		fail := func(step string, err error) error {
			return fmt.Errorf("attach: netns %s: %s: %s: %w", netnsPath, name, step, err)
		}
		iface, routes, neighs, err := n.describe(l)
		if err != nil {
			return nil, fail("describe", err)
		}
		tapName := TapName(i)
		created[tapName] = true
		tap, nicMAC, err := makeTap(i, tapName, l.Attrs().MTU)
		if err != nil {
			return nil, fail("create tap "+tapName, err)
		}
		if err := n.redirect(l, tap); err != nil {
			return nil, fail("redirect to tap "+tapName, err)
		}
		if i == 0 && hasIPv4(iface) {
			if err := n.forwardLocalhost(ctx, tap, iface, e.Request); err != nil {
				return nil, fail("forward localhost to the guest", err)
			}
		}
		e.NICs = append(e.NICs, NIC{Interface: name, Tap: tapName, MAC: iface.Mac})
		iface.NicMac = nicMAC
		e.Request.Interfaces = append(e.Request.Interfaces, iface)
		for _, r := range routes {
			if r.Gateway == "" {
				linkRoutes = append(linkRoutes, r)
			} else {
				gwRoutes = append(gwRoutes, r)
			}
		}
		e.Request.Neighbors = append(e.Request.Neighbors, neighs...)
		log.G(ctx).WithFields(log.Fields{"netns": netnsPath, "interface": name, "tap": tapName, "mac": iface.Mac}).Debug("pod interface attached")
	}
	// Routes through a gateway need the gateway's link route first.
	e.Request.Routes = append(linkRoutes, gwRoutes...)
	return e, nil
}

// TapName is the name of the tap of the i-th pod interface.
func TapName(i int) string { return fmt.Sprintf("tap%d%s", i, TapSuffix) }

// podLinks are the links a VM gets a NIC for: Ethernet links that are not
// loopback and not this package's taps (tunnel fallback devices such as
// sit0 have no Ethernet address).
func podLinks(links []netlink.Link) []netlink.Link {
	var out []netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || isTap(l) || a.EncapType != "ether" || len(a.HardwareAddr) != 6 {
			continue
		}
		out = append(out, l)
	}
	return out
}

// isTap reports a tap device made by this package.
func isTap(l netlink.Link) bool {
	return strings.HasSuffix(l.Attrs().Name, TapSuffix) && l.Type() == "tuntap"
}

// createTap creates a persistent tap device, owned by owner, with the given MTU
// and sets it up. The tun ioctl creates the device in the calling
// thread's namespace, hence n.do.
func (n *nsHandle) createTap(name string, mtu int, owner uint32) (netlink.Link, error) {
	tap := &netlink.Tuntap{
		Owner:     owner,
		Group:     owner,
		LinkAttrs: netlink.LinkAttrs{Name: name},
		Mode:      netlink.TUNTAP_MODE_TAP,
		// One queue and a virtio-net header, as the VMMs open it; EXCL
		// fails instead of attaching to an existing device.
		Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR | netlink.TUNTAP_ONE_QUEUE | netlink.TUNTAP_TUN_EXCL,
	}
	if err := n.do(func() error { return n.nl.LinkAdd(tap) }); err != nil {
		return nil, err
	}
	l, err := n.nl.LinkByName(name)
	if err != nil {
		return nil, err
	}
	if mtu > 0 {
		if err := n.nl.LinkSetMTU(l, mtu); err != nil {
			return nil, fmt.Errorf("set MTU %d: %w", mtu, err)
		}
	}
	if err := n.nl.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	return l, nil
}

// describe returns what the guest needs to recreate link: the interface
// with its global addresses, the main-table routes through it and its
// permanent neighbours.
func (n *nsHandle) describe(l netlink.Link) (*api.Interface, []*api.Route, []*api.Neighbor, error) {
	a := l.Attrs()
	addrs, err := n.nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list addresses: %w", err)
	}
	routes, err := n.nl.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{LinkIndex: a.Index, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list routes: %w", err)
	}
	neighs, err := n.nl.NeighList(a.Index, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list neighbours: %w", err)
	}
	iface := interfaceFor(a, addrs)
	var ar []*api.Route
	for _, r := range routes {
		if x, ok := routeFor(r, a.Name); ok {
			ar = append(ar, x)
		}
	}
	var an []*api.Neighbor
	for _, nb := range neighs {
		if x, ok := neighborFor(nb, a.Name); ok {
			an = append(an, x)
		}
	}
	return iface, ar, an, nil
}

// isNotFound reports netlink answers for a link that is gone.
func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

// hasIPv4 reports whether iface has an IPv4 address.
func hasIPv4(iface *api.Interface) bool {
	for _, a := range iface.Addresses {
		if ip, _, err := net.ParseCIDR(a.Cidr); err == nil && ip.To4() != nil {
			return true
		}
	}
	return false
}
