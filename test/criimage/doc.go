// Package criimage builds, offline, the container images that Veil's CRI
// tests and the CRI conformance suite (critest) pull: the pod sandbox
// image, e2e busybox, nginx and httpd lookalikes, nonewprivs and the
// cri-tools test images, under the exact names the tests use. The images
// are go-containerregistry v1.Images, ready to push to a registry (see
// test/harness). The base layer is Debian's dynamic busybox (fetched by
// `make setup`) with the host's glibc; small static C programs stand in for
// pause, nginx/httpd, nonewprivs and vsockprobe. It is test-only and never shipped.
package criimage
