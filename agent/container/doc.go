// Package container runs OCI containers inside the guest with runc's
// libcontainer: it turns the host's OCI spec into one that names only guest
// paths, creates and starts containers and exec processes, pairs their
// stdio with stream connections (pipes or a pty), and reports exits only
// after all output was delivered. A CRI pod's sandbox container is a pod
// holder instead (holder.go): a process of the agent's own that keeps the
// pod's namespaces. WarmUp starts and removes a throwaway pod, for warm
// pool VMs.
package container
