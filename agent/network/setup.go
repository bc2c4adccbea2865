package network

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/containerd/log"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
)

const (
	// DefaultResolvConf is the guest's resolver configuration.
	DefaultResolvConf = "/etc/resolv.conf"
	// DefaultLinkTimeout bounds the wait for a NIC to appear.
	DefaultLinkTimeout = 5 * time.Second
	// linkPoll paces the checks for NICs that have not appeared yet.
	linkPoll = 20 * time.Millisecond
)

// Options configure a Configurator.
type Options struct {
	// Handle is the netlink handle to configure through; nil means the
	// agent's own network namespace.
	Handle *netlink.Handle
	// ResolvConf is the file DNS settings are written to; empty means
	// DefaultResolvConf.
	ResolvConf string
	// LinkTimeout bounds the wait for each interface's NIC to appear; 0
	// means DefaultLinkTimeout.
	LinkTimeout time.Duration
}

// Configurator applies SetupNetworkRequests; it implements the agent
// server's Network.
type Configurator struct {
	nl          *netlink.Handle
	resolvConf  string
	linkTimeout time.Duration

	mu sync.Mutex // one Setup at a time
}

// New returns a Configurator.
func New(opts Options) *Configurator {
	c := &Configurator{nl: opts.Handle, resolvConf: opts.ResolvConf, linkTimeout: opts.LinkTimeout}
	if c.nl == nil {
		c.nl = &netlink.Handle{} // netlink's own: sockets per request, in this namespace
	}
	if c.resolvConf == "" {
		c.resolvConf = DefaultResolvConf
	}
	if c.linkTimeout == 0 {
		c.linkTimeout = DefaultLinkTimeout
	}
	return c
}

// Setup validates r, then brings lo up, configures every interface (found
// by MAC), the routes, the static neighbours and, when r names DNS
// servers, the resolver file. Addresses, routes and permanent neighbours
// on the interfaces that r does not name are removed, so a Setup replaces
// an earlier one.
func (c *Configurator) Setup(ctx context.Context, r *api.SetupNetworkRequest) error {
	p, err := parse(r)
	if err != nil {
		return fmt.Errorf("setup network: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.apply(ctx, p); err != nil {
		return fmt.Errorf("setup network: %w", err)
	}
	log.G(ctx).WithFields(log.Fields{"interfaces": len(p.ifaces), "routes": len(p.routes), "neighbours": len(p.neighs)}).Info("network configured")
	return nil
}

func (c *Configurator) apply(ctx context.Context, p *plan) error {
	lo, err := c.nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := c.nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo: set up: %w", err)
	}
	links, err := c.waitLinks(ctx, p.ifaces)
	if err != nil {
		return err
	}
	if err := c.rename(p.ifaces, links); err != nil {
		return err
	}
	byName := map[string]netlink.Link{}
	for i, ip := range p.ifaces {
		l := links[i]
		if err := c.configure(ip, l); err != nil {
			return fmt.Errorf("interface %s (%s): %w", ip.name, ip.mac, err)
		}
		byName[ip.name] = l
	}
	if err := c.setRoutes(p.routes, byName); err != nil {
		return err
	}
	if err := c.setNeighbours(p.neighs, byName); err != nil {
		return err
	}
	if len(p.dns.GetServers()) > 0 {
		if err := writeResolvConf(c.resolvConf, p.dns); err != nil {
			return err
		}
	}
	return nil
}

// waitLinks returns the link of each interface, found by MAC, polling
// until all are there, the link timeout passes or ctx ends.
func (c *Configurator) waitLinks(ctx context.Context, ifaces []ifacePlan) ([]netlink.Link, error) {
	if len(ifaces) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.linkTimeout)
	defer cancel()
	t := time.NewTicker(linkPoll)
	defer t.Stop()
	for {
		all, err := c.nl.LinkList()
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		found := make([]netlink.Link, len(ifaces))
		var missing []string
		for i, ip := range ifaces {
			for _, l := range all {
				if a := l.Attrs().HardwareAddr.String(); a == ip.nicMAC.String() || a == ip.mac.String() {
					found[i] = l
					break
				}
			}
			if found[i] == nil {
				missing = append(missing, fmt.Sprintf("%s (%s)", ip.name, ip.nicMAC))
			}
		}
		if len(missing) == 0 {
			return found, nil
		}
		select {
		case <-ctx.Done():
			var have []string
			for _, l := range all {
				have = append(have, fmt.Sprintf("%s %s", l.Attrs().Name, l.Attrs().HardwareAddr))
			}
			return nil, fmt.Errorf("no NIC with the MAC of interface %s: %w (links: %s)",
				strings.Join(missing, ", "), ctx.Err(), strings.Join(have, ", "))
		case <-t.C:
		}
	}
}

// rename gives each link its interface's name. Links to rename first get
// temporary names, so that two NICs can swap names (the guest may have
// named the pod's eth1 eth0).
func (c *Configurator) rename(ifaces []ifacePlan, links []netlink.Link) error {
	for i, ip := range ifaces {
		l := links[i]
		if l.Attrs().Name == ip.name {
			continue
		}
		if err := c.nl.LinkSetDown(l); err != nil {
			return fmt.Errorf("interface %s: set %s down: %w", ip.name, l.Attrs().Name, err)
		}
		tmp := fmt.Sprintf("veiltmp%d", i)
		if err := c.nl.LinkSetName(l, tmp); err != nil {
			return fmt.Errorf("interface %s: rename %s to %s: %w", ip.name, l.Attrs().Name, tmp, err)
		}
		l.Attrs().Name = tmp
	}
	for i, ip := range ifaces {
		l := links[i]
		if l.Attrs().Name == ip.name {
			continue
		}
		if err := c.nl.LinkSetName(l, ip.name); err != nil {
			if other, lerr := c.nl.LinkByName(ip.name); lerr == nil {
				return fmt.Errorf("interface %s: rename %s: the name belongs to another link (MAC %s): %w", ip.name, l.Attrs().Name, other.Attrs().HardwareAddr, err)
			}
			return fmt.Errorf("interface %s: rename %s: %w", ip.name, l.Attrs().Name, err)
		}
		l.Attrs().Name = ip.name
	}
	return nil
}

// configure sets the link down, sets its MAC and MTU, replaces its global
// addresses with the wanted ones and sets it up.
func (c *Configurator) configure(ip ifacePlan, l netlink.Link) error {
	if err := c.nl.LinkSetDown(l); err != nil {
		return fmt.Errorf("set down: %w", err)
	}
	if l.Attrs().HardwareAddr.String() != ip.mac.String() {
		// A warm VM's NIC takes the pod's address; the device tells the
		// VMM, whose receive filter follows.
		if err := c.nl.LinkSetHardwareAddr(l, ip.mac); err != nil {
			return fmt.Errorf("set MAC %s: %w", ip.mac, err)
		}
	}
	if ip.mtu != 0 && l.Attrs().MTU != ip.mtu {
		if err := c.nl.LinkSetMTU(l, ip.mtu); err != nil {
			return fmt.Errorf("set MTU %d: %w", ip.mtu, err)
		}
	}
	have, err := c.nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	want := map[string]bool{}
	for _, a := range ip.addrs {
		want[a.IPNet.String()] = true
	}
	for _, a := range have {
		if a.Scope != unix.RT_SCOPE_UNIVERSE || want[a.IPNet.String()] {
			continue
		}
		if err := c.nl.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove address %s: %w", a.IPNet, err)
		}
	}
	for _, a := range ip.addrs {
		if err := c.nl.AddrReplace(l, a); err != nil {
			return fmt.Errorf("address %s: %w", a.IPNet, err)
		}
	}
	if err := c.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

// routeKey identifies a route within the main table of one link. Both
// the plan and netlink's listing give a default route a zero-length Dst.
func routeKey(r *netlink.Route) string {
	return fmt.Sprintf("%s via %s", r.Dst, r.Gw)
}

// setRoutes removes the routes on the configured links that neither the
// kernel made nor the plan wants, then replaces the wanted ones.
func (c *Configurator) setRoutes(routes []routePlan, links map[string]netlink.Link) error {
	want := map[int]map[string]bool{}
	for i := range routes {
		rp := &routes[i]
		rp.route.LinkIndex = links[rp.device].Attrs().Index
		if want[rp.route.LinkIndex] == nil {
			want[rp.route.LinkIndex] = map[string]bool{}
		}
		want[rp.route.LinkIndex][routeKey(&rp.route)] = true
	}
	for name, l := range links {
		have, err := c.nl.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("interface %s: list routes: %w", name, err)
		}
		for _, r := range have {
			if r.Protocol == unix.RTPROT_KERNEL || want[l.Attrs().Index][routeKey(&r)] {
				continue
			}
			if err := c.nl.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("interface %s: remove route %s: %w", name, r, err)
			}
		}
	}
	for _, rp := range routes {
		if err := c.nl.RouteReplace(&rp.route); err != nil {
			return fmt.Errorf("route %s: %w", rp.desc, err)
		}
	}
	return nil
}

// setNeighbours removes permanent neighbours the plan does not want from
// the configured links, then sets the wanted ones.
func (c *Configurator) setNeighbours(neighs []neighPlan, links map[string]netlink.Link) error {
	want := map[string]bool{}
	for i := range neighs {
		np := &neighs[i]
		np.neigh.LinkIndex = links[np.device].Attrs().Index
		want[fmt.Sprintf("%d %s", np.neigh.LinkIndex, np.neigh.IP)] = true
	}
	for name, l := range links {
		have, err := c.nl.NeighList(l.Attrs().Index, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("interface %s: list neighbours: %w", name, err)
		}
		for _, n := range have {
			if n.State&netlink.NUD_PERMANENT == 0 || want[fmt.Sprintf("%d %s", n.LinkIndex, n.IP)] {
				continue
			}
			if err := c.nl.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("interface %s: remove neighbour %s: %w", name, n.IP, err)
			}
		}
	}
	for _, np := range neighs {
		if err := c.nl.NeighSet(&np.neigh); err != nil {
			return fmt.Errorf("neighbour %s (%s) on %s: %w", np.neigh.IP, np.neigh.HardwareAddr, np.device, err)
		}
	}
	return nil
}

// WarmUp runs what every Setup runs before it touches a pod's interfaces:
// it sets lo up and lists the links, lo's addresses and the routes, so
// that a warm pool VM has run that code before its pod's Setup.
func (c *Configurator) WarmUp(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.apply(ctx, &plan{}); err != nil {
		return fmt.Errorf("warm up network: %w", err)
	}
	lo, err := c.nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("warm up network: lo: %w", err)
	}
	if _, err := c.nl.LinkList(); err != nil {
		return fmt.Errorf("warm up network: list links: %w", err)
	}
	if _, err := c.nl.AddrList(lo, netlink.FAMILY_ALL); err != nil {
		return fmt.Errorf("warm up network: list addresses: %w", err)
	}
	if _, err := c.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE); err != nil {
		return fmt.Errorf("warm up network: list routes: %w", err)
	}
	return nil
}
