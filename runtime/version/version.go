// Package version holds the Veil release, set at link time.
package version

// Version is Veil's release; `make build` sets it with -ldflags -X.
var Version = "0.1.0-dev"
