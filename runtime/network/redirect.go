package network

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ingressHandle is the ingress qdisc's handle (ffff:), the parent of its
// filters.
var ingressHandle = netlink.MakeHandle(0xffff, 0)

// filterPriority is the priority of the redirect filters; a tap's pass
// filter (passPriority) comes first.
const filterPriority = 2

// redirect adds, on both links, an ingress qdisc and a match-all u32
// filter whose action redirects every frame to the other link's egress.
func (n *nsHandle) redirect(pod, tap netlink.Link) error {
	for _, p := range [][2]netlink.Link{{pod, tap}, {tap, pod}} {
		from, to := p[0].Attrs(), p[1].Attrs()
		if err := n.addIngress(from.Index); err != nil {
			return fmt.Errorf("%s: add ingress qdisc: %w", from.Name, err)
		}
		f := &netlink.U32{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: from.Index,
				Parent:    ingressHandle,
				Priority:  filterPriority,
				Protocol:  unix.ETH_P_ALL,
			},
			// No selector: netlink makes it match all.
			Actions: []netlink.Action{netlink.NewMirredAction(to.Index)},
		}
		if err := n.nl.FilterAdd(f); err != nil {
			return fmt.Errorf("%s: add u32 filter redirecting to %s: %w", from.Name, to.Name, err)
		}
	}
	return nil
}

// addIngress adds an ingress qdisc to link index, keeping one that exists.
func (n *nsHandle) addIngress(index int) error {
	err := n.nl.QdiscAdd(ingressQdisc(index))
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func ingressQdisc(index int) *netlink.Ingress {
	return &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: index,
		Parent:    netlink.HANDLE_INGRESS,
		Handle:    ingressHandle,
	}}
}

// ingressOf returns link's ingress qdisc, or nil.
func (n *nsHandle) ingressOf(l netlink.Link) (netlink.Qdisc, error) {
	qs, err := n.nl.QdiscList(l)
	if err != nil {
		return nil, err
	}
	for _, q := range qs {
		if q.Type() == "ingress" {
			return q, nil
		}
	}
	return nil, nil
}

// isRedirectTo reports a u32 filter whose action redirects to one of
// taps, or, when dangling is set, to a link that no longer exists.
func isRedirectTo(f *netlink.U32, taps map[int]string, exists map[int]bool, dangling bool) bool {
	for _, a := range f.Actions {
		m, ok := a.(*netlink.MirredAction)
		if !ok || m.MirredAction != netlink.TCA_EGRESS_REDIR {
			continue
		}
		if _, ok := taps[m.Ifindex]; ok {
			return true
		}
		if dangling && !exists[m.Ifindex] {
			return true
		}
	}
	return false
}

// removeRedirects deletes link l's ingress filters that redirect to taps
// (see isRedirectTo), a whole priority at a time and only where every
// filter of that priority is one of them, then the ingress qdisc if no
// filter is left on it.
func (n *nsHandle) removeRedirects(l netlink.Link, taps map[int]string, exists map[int]bool, dangling bool) error {
	q, err := n.ingressOf(l)
	if err != nil || q == nil {
		return err
	}
	filters, err := n.nl.FilterList(l, ingressHandle)
	if err != nil {
		return fmt.Errorf("list filters: %w", err)
	}
	type prio struct {
		ours, foreign int
		proto         uint16
	}
	prios := map[uint16]*prio{}
	for _, f := range filters {
		a := f.Attrs()
		p := prios[a.Priority]
		if p == nil {
			p = &prio{proto: a.Protocol}
			prios[a.Priority] = p
		}
		u, ok := f.(*netlink.U32)
		switch {
		case !ok:
			p.foreign++
		case u.Sel == nil:
			// The hash table that holds a u32 priority's keys.
		case isRedirectTo(u, taps, exists, dangling):
			p.ours++
		default:
			p.foreign++
		}
	}
	deleted := false
	for pr, p := range prios {
		if p.ours == 0 || p.foreign > 0 {
			continue
		}
		err := n.nl.FilterDel(&netlink.U32{FilterAttrs: netlink.FilterAttrs{
			LinkIndex: l.Attrs().Index,
			Parent:    ingressHandle,
			Priority:  pr,
			Protocol:  p.proto,
		}})
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete redirect filter (priority %d): %w", pr, err)
		}
		deleted = true
	}
	if !deleted {
		return nil
	}
	left, err := n.nl.FilterList(l, ingressHandle)
	if err != nil {
		return fmt.Errorf("list filters: %w", err)
	}
	if len(left) > 0 {
		return nil
	}
	if err := n.nl.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("delete ingress qdisc: %w", err)
	}
	return nil
}
