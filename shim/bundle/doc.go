// Package bundle owns a container's OCI bundle on the host as the shim
// sees it:
//
//   - spec.go: the spec, which sandbox (shim group) the container belongs
//     to, and the spec the guest gets;
//   - pod.go: what the container is within its CRI pod and what a VM
//     cannot give a pod (the host's network or IPC namespace);
//   - volumes.go: which host paths it may share with the guest (the
//     volume policy), opened by descriptor and checked against the policy,
//     and its bind mounts rewritten for the guest; rootfs.go: the root
//     filesystem and volumes as the sandbox's share takes them;
//   - shimstate.go: the record the shim leaves in the bundle so that the
//     `delete` action can clean up after a crashed shim.
package bundle
