// Package ch is the Cloud Hypervisor driver of runtime/hypervisor. It runs
// `cloud-hypervisor --api-socket <dir>/ch-api.sock` (seccomp on, output in
// <dir>/cloud-hypervisor.log, pid in <dir>/cloud-hypervisor.pid, inside the
// pod's network namespace) and drives it over CH's HTTP API on that socket:
// vmm.ping until it answers, vm.create, vm.boot, vm.info until Running, and
// vmm.shutdown to stop. The VM exposes hybrid vsock natively and implements
// the optional abilities of runtime/hypervisor (hotplug, resize, pause,
// snapshot, counters, info).
//
// This is the only package that imports the generated client (generated/):
// it stays behind the package's vmmAPI interface, and every non-2xx answer
// becomes an *APIError carrying CH's status and body.
package ch
