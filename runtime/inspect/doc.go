// Package inspect reads running sandboxes from the outside, for the
// operator's veil tool: the state directories under the configured
// state_dir (helper pid files, sockets, console log, containers' shared
// directories), the host processes' resource use from /proc, the guest
// through a second agent connection (DebugExec, Stats), and the VMM
// through its own API socket (as runtime/hypervisor/registry connects to
// it). SandboxInfo is what it reads about one sandbox (`veil sandbox ls`).
// It never changes a sandbox.
package inspect
