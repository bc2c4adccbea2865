// Package kubernetes is the Kubernetes suite: a one-node cluster (etcd,
// kube-apiserver and a kubelet of the release test/kubernetes/build pins,
// no scheduler or controller manager: pods name their node) on the
// harness's containerd in CRI mode, inside its network namespace, with
// RuntimeClasses veil (with the VM's pod overhead) and runc.
//
// Its tests drive the cluster with kubectl as a user would and run every
// case on runc, the reference, then on veil: a pod's overhead and cgroup,
// logs, exec and port-forward, probes and restarts, volumes, graceful
// deletion, init containers, and the refusal of hostNetwork pods.
//
// Cluster owns the cluster's life: its PKI and configs (in one directory),
// its daemons, and what the kubelet changes on the host (sysctls, its
// cgroups, /var/log/containers links, the device plugin directory), which
// Stop puts back.
package kubernetes
