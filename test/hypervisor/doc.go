// Package hypervisor holds the integration tests of the hypervisor drivers
// against a real VMM (QEMU here): abilities a driver implements for a
// running VM, checked through the VMM's own API, with the leak census
// after each. They live here, not beside the drivers, so that the
// drivers' unit tests do not import test/harness.
package hypervisor
