// Package build pins the Kubernetes and etcd releases the Kubernetes
// suite (test/kubernetes) runs and builds their binaries (build.sh, run by
// `make k8s`). It is a module of its own so that Kubernetes' dependencies
// stay out of Veil's go.mod; it holds no code.
package build
