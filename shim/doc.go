// Package shim is containerd-shim-veil-v2: containerd's task service v3
// (runtime type io.containerd.veil.v2) served on top of containerd's
// pkg/shim, running every pod in its own Veil sandbox VM.
//
// It owns: the shim's start/delete actions (spawning the long-lived shim,
// one per pod through grouping, and cleaning up after a crashed one), the
// task service (containers and exec processes keyed by id, their state and
// exit bookkeeping, events), host-side stdio (one guest stream connection
// per stdio stream, copied to and from containerd's FIFOs) and the
// container root filesystems mounted into the sandbox's shared directory.
//
// The VM itself (virtiofsd, the hypervisor, the agent connection) belongs
// to runtime/sandbox; this package reaches it only through the small
// Sandbox and Launcher interfaces declared in sandbox.go.
package shim
