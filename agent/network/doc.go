// Package network configures the guest's network from the pod's, as the
// host describes it in an api.SetupNetworkRequest: each interface is
// found by MAC address (the VM's NIC got the pod interface's MAC), renamed,
// given its MTU and addresses and brought up; then come the routes
// (directly connected ones first), the static neighbours and
// /etc/resolv.conf. A later Setup replaces what an earlier one
// configured.
package network
