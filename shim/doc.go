// Package shim is containerd-shim-veil-v2: containerd's task service v3
// (runtime type io.containerd.veil.v2) served on top of containerd's
// pkg/shim, running every pod in its own Veil sandbox VM.
//
// Run, the entry point cmd/containerd-shim-veil-v2 calls, wires the
// packages below, which split the shim by role as containerd's runc shim
// does (manager, task, process/runc):
//
//   - shim/manager: the binary's actions: `start` spawns the long-lived
//     shim of a pod (one per sandbox through grouping), `delete` cleans up
//     after a dead one; runtime info and features.
//   - shim/task: the task service, one file per RPC family with its test
//     beside it, the containers and processes it keeps, the pod VM's
//     lifecycle and the stdio streams. It reaches the VM only through the
//     small interfaces it owns: Launcher, PodVM, ContainerShare and
//     ContainerAgent.
//   - shim/bundle: a container's OCI bundle on the host: its spec (read,
//     checked, rewritten for the guest), which host paths it may share
//     with the guest, and the record the shim leaves in it for `delete`.
//   - shim/launcher: runtime/sandbox adapted to the task service's
//     interfaces, and the configuration each sandbox runs with.
//
// The VM itself (virtiofsd, the hypervisor, the agent connection, its
// sizing, pausing) belongs to runtime/sandbox.
package shim
