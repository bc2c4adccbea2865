package network

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/veil-runtime/veil/runtime/cleanup"
)

// A warm VM boots before its pod exists, and a microvm cannot hotplug a
// NIC, so its NICs are made first, in a namespace of their own: Park
// makes a tap per future pod interface there, each with a random guest
// MAC, and the VM boots on them. When a pod claims the VM,
// AttachParked moves the taps into the pod's namespace (the VMM keeps
// its open descriptors: a tap moved between namespaces carries on) and
// attaches them as Attach would; the guest agent then finds each NIC by
// its parked MAC and gives it the pod interface's (api.Interface
// nic_mac).

// Park creates n taps (named as Attach names them), owned by uid, set up
// in the namespace at netnsPath, and returns them as NICs with random
// locally administered guest MACs (no Interface yet). On error nothing
// is left.
func Park(ctx context.Context, netnsPath string, n int, uid uint32) (_ *Endpoints, retErr error) {
	h, err := openNetNS(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("park NICs: %w", err)
	}
	defer h.Close()
	e := &Endpoints{NetNSPath: netnsPath}
	created := map[string]bool{}
	var undo cleanup.Stack
	defer undo.OnError(ctx, &retErr)
	undo.Push("parked taps in "+netnsPath, func(ctx context.Context) error { return h.teardown(ctx, created) })
	for i := range n {
		name := TapName(i)
		created[name] = true
		if _, err := h.createTap(name, 0, uid); err != nil {
			return nil, fmt.Errorf("park NICs: create tap %s in %s: %w", name, netnsPath, err)
		}
		mac, err := randomMAC()
		if err != nil {
			return nil, err
		}
		e.NICs = append(e.NICs, NIC{Tap: name, MAC: mac})
	}
	return e, nil
}

// AttachParked moves the parked taps from the namespace at parkedNS into
// the pod's at podNS and attaches them there, one per pod interface, as
// Attach does; the pod must have exactly as many interfaces as there
// are parked taps. The Request's interfaces carry the parked NICs' MACs
// as nic_mac. On error the taps that reached the pod's namespace are
// removed (the VM they belong to is then discarded).
func AttachParked(ctx context.Context, parkedNS, podNS string, parked []NIC) (*Endpoints, error) {
	n, links, err := openPodNetNS(podNS)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	pods := podLinks(links)
	if len(pods) != len(parked) {
		return nil, fmt.Errorf("attach: netns %s has %d pod interfaces, the warm VM %d NICs", podNS, len(pods), len(parked))
	}
	from, err := openNetNS(parkedNS)
	if err != nil {
		return nil, fmt.Errorf("attach: parked NICs: %w", err)
	}
	defer from.Close()
	podNSHandle, err := netns.GetFromPath(podNS)
	if err != nil {
		return nil, fmt.Errorf("attach: netns %s: %w", podNS, err)
	}
	defer func() { _ = podNSHandle.Close() }()
	return n.attach(ctx, links, func(i int, name string, mtu int) (netlink.Link, string, error) {
		if parked[i].Tap != name {
			return nil, "", fmt.Errorf("parked tap %d is %s, want %s", i, parked[i].Tap, name)
		}
		l, err := from.nl.LinkByName(name)
		if err != nil {
			return nil, "", fmt.Errorf("parked tap %s: %w", name, err)
		}
		if !isTap(l) {
			return nil, "", fmt.Errorf("parked link %s in %s is a %s, not a tap", name, parkedNS, l.Type())
		}
		if err := from.nl.LinkSetNsFd(l, int(podNSHandle)); err != nil {
			return nil, "", fmt.Errorf("move parked tap %s: %w", name, err)
		}
		tap, err := n.nl.LinkByName(name)
		if err != nil {
			return nil, "", err
		}
		if mtu > 0 {
			if err := n.nl.LinkSetMTU(tap, mtu); err != nil {
				return nil, "", fmt.Errorf("set MTU %d: %w", mtu, err)
			}
		}
		if err := n.nl.LinkSetUp(tap); err != nil {
			return nil, "", fmt.Errorf("set up: %w", err)
		}
		return tap, parked[i].MAC, nil
	})
}

// randomMAC is a random unicast, locally administered MAC.
func randomMAC() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	b[0] = b[0]&^0x01 | 0x02
	return net.HardwareAddr(b).String(), nil
}

// PodInterfaces counts the pod interfaces in the namespace at netnsPath:
// the NICs a VM needs for it.
func PodInterfaces(netnsPath string) (int, error) {
	n, err := openNetNS(netnsPath)
	if err != nil {
		return 0, err
	}
	defer n.Close()
	links, err := n.nl.LinkList()
	if err != nil {
		return 0, fmt.Errorf("netns %s: list links: %w", netnsPath, err)
	}
	return len(podLinks(links)), nil
}
