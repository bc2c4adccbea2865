// Package jail confines the host helpers of a sandbox (the VMM,
// vhost-device-vsock, virtiofsd), in the manner of Firecracker's jailer.
//
// A helper is started through a short-lived stage: a copy of the running
// binary (moby/sys/reexec, argv[0] "veil-jail") that the parent creates
// with new mount, PID, IPC, UTS and network namespaces when the Spec asks
// for them. The stage waits until the parent has placed it in the
// sandbox's cgroup and sent it the Spec, then, as root: sets its
// oom_score_adj and rlimits, builds a root on a tmpfs holding only the
// Spec's binds (read-only unless said otherwise, nosuid, nodev except
// device nodes) and /usr, pivots into it, drops every capability from
// its bounding set, switches to the Spec's uid/gid with no supplementary
// groups but those named, sets no_new_privs, and execs the helper, which
// keeps the stage's pid. A failure is written to the helper's log
// (stderr) and the stage exits 125 without running the helper.
//
// The package owns that sequence (Prepare on the parent's side, the
// stage in stage.go) and the per-sandbox uid leases (Lease), one uid and
// gid per running sandbox from the configured range, so two sandboxes'
// helpers never share an identity.
package jail
