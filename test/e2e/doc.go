// Package e2e runs containers through a private containerd with the Veil
// shim (runtime io.containerd.veil.v2) using ctr, and checks what a user
// sees: output, exit codes, stdin, terminals, exec, errors, VM death, and
// that nothing (process, state dir, mount) is left behind.
//
// The tests need root, KVM-less QEMU, the artifacts of `make setup build
// guest`; they skip unless VEIL_INTEGRATION=1 (see test/harness).
package e2e
