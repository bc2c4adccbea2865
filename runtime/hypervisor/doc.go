// Package hypervisor is the contract between the sandbox runtime and a VMM
// driver (see the qemu subpackage): start a VM from a VMConfig, know when
// it died, stop it. It also builds the guest kernel command line. Device
// hotplug and other optional capabilities (devices.go) are small
// interfaces a driver's VM may implement; callers type-assert for them.
package hypervisor
