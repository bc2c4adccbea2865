// Package network connects a sandbox VM to its pod's network namespace,
// on the host side.
//
// The model is a traffic-control redirect ("tcfilter"): for every pod
// interface in the namespace (normally CNI's veth eth0) Attach creates a
// persistent tap device next to it, which the VMM opens, and adds an
// ingress qdisc on both with a match-all u32 filter whose mirred action
// redirects every frame arriving on one to the other. The pod interface
// keeps its addresses; the guest's NIC gets its MAC address, and the
// guest agent is given the interface's addresses, routes and static
// neighbours (api.SetupNetworkRequest) to configure the same network
// inside the VM.
//
// For port forwarding (containerd dials localhost:<port> in the pod's
// namespace), TCP to 127.0.0.1 there is NATed to the guest over a
// link-local /30 on the first tap (localhost.go).
//
// Namespaces are handled by path (as CRI gives them, e.g.
// /var/run/netns/cni-...). Netlink sockets are opened inside the
// namespace; only tap creation, whose ioctl acts on the calling thread's
// namespace, switches a locked thread into it and back.
package network
