// Package task is the shim's task service v3: one per shim, one sandbox
// VM, any number of containers in it.
//
// One file per RPC family, each with its _test.go beside it:
// task_create.go, task_start.go, task_exec.go (Exec, ResizePty, CloseIO),
// task_kill.go, task_wait.go (Wait and the exit bookkeeping every started
// process gets), task_state.go (State, Pids), task_delete.go,
// task_update.go, task_stats.go, task_pause.go (Pause and Resume: the
// agent freezes the paused container's cgroup; documented there),
// task_shutdown.go (Connect, Shutdown, Checkpoint). service.go holds the
// service and its event forwarder; process.go keeps containers and
// processes keyed by id with their state machine; vm_lifecycle.go starts
// the pod's VM with its first container, watches it and stops it with its
// last; stdio.go copies each process's stdio streams between the guest
// and containerd's FIFOs; options.go reads containerd's runtime options;
// errors.go converts errors at the ttrpc edge only.
//
// The service reaches the VM only through interfaces it owns: Launcher and
// PodVM (podvm.go), ContainerShare (share.go) and ContainerAgent
// (agent.go), the container and process calls of the guest agent.
// shim/launcher implements them with runtime/sandbox; what a container's
// bundle says is read through shim/bundle.
package task
