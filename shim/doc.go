// Package shim is containerd-shim-veil-v2: containerd's task service v3
// (runtime type io.containerd.veil.v2) served on top of containerd's
// pkg/shim, running every pod in its own Veil sandbox VM.
//
// It owns, by role (as containerd's runc shim splits manager, task and
// runc/process):
//
// Binary actions (run.go, manager.go, shimstate.go): Run, the entry point
// cmd/containerd-shim-veil-v2 calls; the `start` action spawning the
// long-lived shim (one per pod through grouping) and the `delete` action
// cleaning up after a crashed one, from what a bundle records of its shim
// (shimstate.go); features.go answers containerd's runtime info.
//
// The task service (service.go, one file per RPC family, each with its
// _test.go beside it): task_create.go, task_start.go, task_exec.go (Exec,
// ResizePty, CloseIO), task_kill.go, task_wait.go (Wait and the exit
// bookkeeping every started process gets), task_state.go (State, Pids),
// task_delete.go, task_update.go, task_stats.go, task_pause.go (Pause and
// Resume: how a task's pause maps to freezing the pod's VM is documented
// there), task_shutdown.go (Connect, Shutdown, Checkpoint). process.go
// keeps containers and processes keyed by id with their state machine;
// vm_lifecycle.go starts the pod's VM with its first container, watches it
// and stops it with its last; errors.go converts errors at the ttrpc edge
// only.
//
// The host filesystem and stdio: bundle.go (the OCI bundle and the spec
// the guest gets), pod.go (what a container is within its pod and what it
// may ask of the host), volumes.go and share.go (the container's root
// filesystem and volumes, mounted into the sandbox's shared directory),
// stdio.go (one guest stream connection per stdio stream, copied to and
// from containerd's FIFOs), config.go (the Veil config a sandbox runs
// with).
//
// The VM itself (virtiofsd, the hypervisor, the agent connection, its
// sizing, pausing) belongs to runtime/sandbox; this package reaches it
// only through the small interfaces it owns: Launcher and PodVM
// (podvm.go), and ContainerAgent (agent.go), the container and process
// calls of the guest agent. launcher.go adapts runtime/sandbox to them.
package shim
