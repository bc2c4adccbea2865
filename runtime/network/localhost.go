package network

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"

	"github.com/containerd/log"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
)

// Port forwarding (`kubectl port-forward`, CRI PortForward) makes
// containerd dial localhost:<port> inside the pod's network namespace,
// where a runc pod's processes listen. A Veil pod listens in the guest,
// so the namespace forwards TCP to 127.0.0.1 there: it is DNATed to the
// guest's end of a link-local /30 on the first tap and SNATed to the
// namespace's end, whose replies a tc filter on the tap hands to the
// namespace's own stack instead of redirecting them to the pod network.
const (
	// forwardHostIP is the namespace's end, on the tap.
	forwardHostIP = "169.254.77.1"
	// forwardGuestIP is the guest's end, a second address of its NIC.
	forwardGuestIP = "169.254.77.2"
	// forwardPrefix is the link's prefix length.
	forwardPrefix = 30
	// forwardComment marks the iptables rules, for their removal.
	forwardComment = "veil-localhost-forward"
	// passPriority runs the tap's pass filter before its redirect.
	passPriority = 1
)

// forwardRules are the nat rules, as iptables arguments after the table.
func forwardRules(tap string) [][]string {
	return [][]string{
		{"OUTPUT", "-o", "lo", "-d", "127.0.0.1/32", "-p", "tcp", "-m", "comment", "--comment", forwardComment, "-j", "DNAT", "--to-destination", forwardGuestIP},
		{"POSTROUTING", "-o", tap, "-d", forwardGuestIP + "/32", "-m", "comment", "--comment", forwardComment, "-j", "SNAT", "--to-source", forwardHostIP},
	}
}

// forwardLocalhost sets up the forwarding on tap (the first NIC's) and
// adds the guest's end to the request: a second address on iface and a
// static neighbour for the namespace's end. Without iptables on the host
// it logs a warning and forwards nothing: port forwarding then fails as
// it would without this.
func (n *nsHandle) forwardLocalhost(ctx context.Context, tap netlink.Link, iface *api.Interface, req *api.SetupNetworkRequest) error {
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		log.G(ctx).WithError(err).Warn("no iptables: port forwarding to this pod will not reach the guest")
		return nil
	}
	a := tap.Attrs()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(forwardHostIP), Mask: net.CIDRMask(forwardPrefix, 32)}, Scope: unix.RT_SCOPE_LINK}
	if err := n.nl.AddrAdd(tap, addr); err != nil {
		return fmt.Errorf("address %s: %w", addr, err)
	}
	mac, err := net.ParseMAC(iface.Mac)
	if err != nil {
		return fmt.Errorf("guest MAC %q: %w", iface.Mac, err)
	}
	if err := n.nl.NeighSet(&netlink.Neigh{LinkIndex: a.Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: net.ParseIP(forwardGuestIP), HardwareAddr: mac}); err != nil {
		return fmt.Errorf("neighbour %s: %w", forwardGuestIP, err)
	}
	// Locally made packets from 127.0.0.1 may only leave through a
	// link that allows it.
	sysctl := "/proc/sys/net/ipv4/conf/" + a.Name + "/route_localnet"
	if err := n.do(func() error { return os.WriteFile(sysctl, []byte("1"), 0o644) }); err != nil {
		return fmt.Errorf("%s: %w", sysctl, err)
	}
	// The guest's replies to the namespace's end stay in the namespace.
	if err := n.addIngress(a.Index); err != nil {
		return fmt.Errorf("add ingress qdisc: %w", err)
	}
	pass := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: a.Index, Parent: ingressHandle, Priority: passPriority, Protocol: unix.ETH_P_IP},
		Sel: &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL, Nkeys: 1, Keys: []netlink.TcU32Key{
			// IPv4 destination address: offset 16 of the IP header.
			{Mask: 0xffffffff, Val: ipv4Be(forwardHostIP), Off: 16},
		}},
		// A match with a class and no action ends the ingress filters
		// with "ok": the frame goes up the namespace's stack (this needs
		// no act_gact module).
		ClassId: netlink.MakeHandle(1, 1),
	}
	if err := n.nl.FilterAdd(pass); err != nil {
		return fmt.Errorf("add pass filter for %s: %w", forwardHostIP, err)
	}
	for _, r := range forwardRules(a.Name) {
		if err := n.iptables(ctx, ipt, append([]string{"-t", "nat", "-A"}, r...)...); err != nil {
			n.removeForward(ctx)
			return err
		}
	}
	iface.Addresses = append(iface.Addresses, &api.IPAddress{Cidr: fmt.Sprintf("%s/%d", forwardGuestIP, forwardPrefix)})
	req.Neighbors = append(req.Neighbors, &api.Neighbor{Ip: forwardHostIP, Mac: a.HardwareAddr.String(), Device: iface.Name})
	return nil
}

// removeForward deletes every nat rule of the namespace that carries
// forwardComment; none, or no iptables, is not an error. The address,
// neighbour and filter go with the tap.
func (n *nsHandle) removeForward(ctx context.Context) {
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		return
	}
	out, err := n.iptablesOutput(ctx, ipt, "-t", "nat", "-S")
	if err != nil {
		log.G(ctx).WithError(err).WithField("netns", n.path).Warn("list port-forward rules")
		return
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "-A" || !strings.Contains(line, forwardComment) {
			continue
		}
		f[0] = "-D"
		if err := n.iptables(ctx, ipt, append([]string{"-t", "nat"}, f...)...); err != nil {
			log.G(ctx).WithError(err).WithField("netns", n.path).Warn("remove port-forward rule")
		}
	}
}

// iptables runs iptables inside the namespace.
func (n *nsHandle) iptables(ctx context.Context, ipt string, args ...string) error {
	_, err := n.iptablesOutput(ctx, ipt, args...)
	return err
}

// iptablesOutput runs iptables inside the namespace and returns its
// output.
func (n *nsHandle) iptablesOutput(ctx context.Context, ipt string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.path, "--", ipt, "-w", "5"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("netns %s: iptables %s: %w: %s", n.path, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ipv4Be is an IPv4 address as the big-endian word u32 keys compare.
func ipv4Be(s string) uint32 {
	ip := net.ParseIP(s).To4()
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}
