// Package openapi owns Veil's Swagger 2.0 description of the Cloud
// Hypervisor HTTP API (cloud-hypervisor.yaml) and the script that turns it
// into the client and models under generated/ (generate.sh, run by
// `make generate`).
//
// The package has no runtime code. Its tests validate the description,
// compare it against the upstream OpenAPI 3 description when that is
// available next to the repository (../shared/reference/), and exercise the
// generated client over a Unix socket. README.md explains how the
// description was derived and how to move to a new Cloud Hypervisor release.
package openapi
