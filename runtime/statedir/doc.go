// Package statedir owns a sandbox's host state directory,
// <state_dir>/<id>/: its layout (every name in it is defined here, and
// the rest of Veil asks Dir for paths instead of joining strings), and
// every host-side operation on the virtio-fs share below it.
//
// The guest is hostile and virtiofsd writes what it asks into the share,
// so the share is built so that host root never resolves a path through
// anything the guest can write:
//
//   - share/ is a small tmpfs (nosuid, nodev, noexec) that only the host
//     writes; shared/, which virtiofsd serves, is a read-only bind of it,
//     so the guest can create nothing there (no symlinks, no junk, no
//     files filling the host's memory).
//   - Container root filesystems and volumes are assembled as detached
//     mount trees (open_tree), made nosuid and nodev (and read-only as the
//     spec asks, recursively for rro) before anyone can see them, and
//     moved into virtiofsd's mount namespace only (see nsexec.go). The
//     host's own mount namespace never holds them, so no host path leads
//     into guest-written directories, and removing a volume's host
//     directory is never refused because Veil holds a mount on it.
//   - Directories are created and removed through file descriptors opened
//     with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV);
//     unmounting uses only mount points Veil made, with UMOUNT_NOFOLLOW.
//
// Layout of <state_dir>/<id>/ (itself a private bind mount of itself, so
// that nothing mounted below it propagates anywhere):
//
//	share/             tmpfs, the host's writable handle on the share
//	shared/            read-only bind of share/: virtio-fs tag "veil",
//	                   mounted in the guest at /run/veil/shared
//	  <cid>/rootfs     a container's root filesystem (in virtiofsd's
//	                   mount namespace only)
//	  <cid>/mounts/<n> the container's n-th spec mount when it is a bind
//	staging/           where a rootfs is mounted (containerd's mount
//	                   options) before it is cloned and moved
//	virtiofsd.sock     virtiofsd's vhost-user socket
//	vsock.sock         the hybrid vsock socket (and vsock.sock_1026, the
//	                   agent's ready notification)
//	vhost-vsock.sock   QEMU ↔ vhost-device-vsock
//	qmp.sock           QEMU's QMP socket
//	ch-api.sock        Cloud Hypervisor's API socket
//	netns              the pod's network namespace path, for cleanup
//	console.log, <helper>.log, <helper>.pid
//
// The warm pool boots VMs before any pod asks for one. Each has the same
// layout in <state_dir>/.pool/<vmid>/ (NewPool; .pool can never be a
// sandbox id). When a sandbox claims one, the VM goes on running there
// (its helpers' arguments and sockets name that directory, and the
// directory, a bind mount of itself, cannot be renamed), and Link makes
// <state_dir>/<id> a relative symlink to .pool/<vmid>, so that whatever
// finds a sandbox by id (Open: the cleanup after a crash, veil sandbox
// ls/exec/console) finds it:
//
//	<state_dir>/
//	  <id>/              a sandbox booted for it (the layout above)
//	  <id> -> .pool/<vmid>
//	                     a sandbox running in a claimed pool VM
//	  .pool/<vmid>/      a pool VM's directory (the layout above)
//	  .uid-<n>           jail uid leases (runtime/jail)
//
// Only host root writes the state directory, yet Open follows a link
// only when its target is exactly .pool/<vmid> with a valid vmid and that
// is a real directory; any other link is refused, naming it, and is never
// resolved.
package statedir
