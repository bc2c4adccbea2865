// Package manager owns the shim binary's actions, which containerd runs
// before and after the long-lived shim (containerd's shim.Manager):
//
//   - `start` (manager.go) spawns the long-lived shim serving a
//     container's pod, or returns the address of the one already serving
//     it: one shim per sandbox, its socket derived from the sandbox id;
//   - `delete` (manager.go) cleans up after a shim that died, from what
//     the container's bundle records of it (shim/bundle), unless the pod's
//     shim still lives;
//   - Info (features.go) describes the runtime and what a container spec
//     may ask of it.
package manager
