// Package sandbox owns the host side of one sandbox (pod) and every
// sandbox-level decision:
//
//   - its lifecycle: Start brings up the state directory under the
//     configured state_dir, the jail uid and sandbox cgroup, the share and
//     its virtiofsd, the pod's taps, the console, the VM and the agent
//     connection (runtime/agentclient), then the guest's sandbox and
//     network, as named steps (start.go) undone in reverse on failure
//     (runtime/cleanup); Stop tears everything down; Cleanup removes what
//     a crashed runtime left behind; KillVM ends a VM whose guest no
//     longer answers.
//   - the VM's size: FitResources is the sizing policy (does a
//     container's new limits need a bigger VM?), Resize the hotplug
//     mechanism behind it.
//   - confinement of its helpers (jail, cgroup, oom_score_adj) and its
//     stdio streams to the guest (DialStream).
//
// Container and process calls are not its business: the shim makes them
// on the agent connection (Agent).
package sandbox
