// Package hypervisor is the contract between the sandbox runtime and a VMM
// driver (the qemu and ch subpackages): start a VM from a VMConfig, know
// when it died, stop it. It also builds the guest kernel command line.
// Device hotplug, pause/resume (Pauser) and other optional capabilities
// (devices.go) are small interfaces a driver's VM may implement; callers
// type-assert for them. Which drivers exist, and how each is built from
// the config, is the registry subpackage's list.
package hypervisor
