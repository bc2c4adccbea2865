// Package registry owns the list of hypervisors Veil can run: for each,
// its hypervisor.name, its default binary and the config key of its path,
// what it needs of the host (hardware KVM, vhost-device-vsock, opening
// the pod's taps itself), how to build its driver from the config, and
// how to reach the VMM of a running sandbox through its API socket.
// Sandbox start (New), runtime/inspect, runtime/hostcheck and `veil
// version` ask it. A new hypervisor is a driver package, one Entry here,
// a config key for its binary, and its name in config.KnownHypervisors:
// runtime/config cannot import this package (the entries build drivers
// from a Config), so it keeps the names it validates and the "auto"
// policy, and this package's test pins the two lists together.
package registry
