// Package pod holds Veil's Kubernetes-level integration tests: pods run
// through containerd's CRI plugin (a private containerd from test/harness
// in CRI mode, with CNI and a private registry) on the veil runtime
// handler. They cover the pod lifecycle, CRI behaviours, pod networking
// and volumes, and a benchmark of pod start time. They need root, VMs and
// containerd, so they skip unless VEIL_INTEGRATION=1.
package pod
