// Package ch is the Cloud Hypervisor driver of runtime/hypervisor. It runs
// `cloud-hypervisor --api-socket <api socket> --seccomp true` (output in
// <dir>/cloud-hypervisor.log, pid in <dir>/cloud-hypervisor.pid, in the
// sandbox's cgroup) and drives it over CH's HTTP API on that socket:
// vmm.ping until it answers, vm.create, vm.info, vm.boot, vm.info until
// Running, and vmm.shutdown to stop. The VM exposes hybrid vsock natively
// and implements the optional abilities of runtime/hypervisor (hotplug,
// resize, pause and resume, snapshot, restore, counters, info); CH's 405
// to a pause or resume from the wrong state is
// errdefs.ErrFailedPrecondition.
//
// With VMConfig.Jail, CH runs through runtime/jail as the sandbox's uid,
// with no capability and no_new_privs, in its own mount, PID, IPC and UTS
// namespaces but the pod's network namespace (it opens its taps by name:
// they must be its uid's, see network.AttachOwned), with /dev/kvm (and
// the kvm group) and /dev/net/tun, in a root that holds only the guest
// images (/vm/kernel, /vm/initrd), virtiofsd's sockets (/vm/fs<i>.sock),
// a restore source (/vm/snapshot) and the sandbox's helper directory
// (/helper, writable: its API, vsock and console sockets). Every path it
// is given is the one in that root, and vm.create turns its Landlock on.
// Without a jail it runs as root in the pod's network namespace
// (nsenter) and is given the host's paths.
//
// With VMConfig.Console, the guest's serial port is served on the console
// socket of the helper directory; the driver connects to it right after
// vm.create (or vm.restore) and hands it to the sink until the VMM closes
// it. The host reaches every socket in the helper directory with
// statedir.DialUnix, which follows no name the jailed VMM may have put
// there.
//
// This is the only package that imports the generated client (generated/):
// it stays behind the package's vmmAPI interface, and every non-2xx answer
// becomes an *APIError carrying CH's status and body.
package ch
