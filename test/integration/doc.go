// Package integration is the light half of Veil's test harness: the one
// gate every integration test passes through (Require) and the locations
// of the checkout's build outputs and setup cache (RepoRoot, CacheDir,
// OutputDir, ConfigPath, LookPath). It imports only the standard library,
// golang.org/x/sys and moby/sys's mountinfo and reexec, so unit tests
// that need the gate or a path do not pull in test/harness (containerd,
// CRI). It is test-only and never shipped.
package integration
