// Package image builds container images offline for Veil's tests, demo and
// benchmarks: an OCI image layout tarball holding Debian's static busybox,
// ready for `ctr images import`. It is test-only and never shipped.
package image
