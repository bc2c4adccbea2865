// Package pool owns Veil's warm pool: sandbox VMs booted before any pod
// asks for one, so that a pod's start skips the boot.
//
// The pieces, and who runs them:
//
//   - The daemon (Serve; `veil pool serve`) keeps pool.size VMs booted
//     and hands them out on its Unix socket (pool.socket, root only).
//   - A keeper (Keep; `veil pool keep`, one per VM, started by the
//     daemon) runs the pod-independent half of a sandbox start
//     (sandbox.Prestart) in <state_dir>/.pool/<vmid>/ and is the parent of
//     the VM's processes (QEMU, vhost-device-vsock, virtiofsd), which die
//     with it. It lives exactly as long as its owner connection, a
//     socket pair: the daemon holds it while the VM is idle, the claiming
//     shim after a claim. When its owner goes away (the daemon or the
//     shim killed), an idle keeper removes its whole VM, a claimed one
//     ends the VM's processes and leaves the rest to the shim's cleanup.
//   - The shim (Claim) asks the daemon for a VM whose Key matches its
//     pod's configuration; the daemon links <state_dir>/<id> to the VM's
//     directory (statedir.Link), tells the keeper, and passes the owner
//     connection over the socket (SCM_RIGHTS). The shim then adopts the
//     VM (sandbox.Adopt). Any failure before that is a cold start.
//
// A VM is never handed out twice and never goes back to the pool after a
// pod. On start the daemon removes every pool directory whose keeper is
// gone and that no sandbox links to (a crash's leftovers).
package pool
