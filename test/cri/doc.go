// Package cri holds Veil's CRI-level integration tests (pods through
// containerd's CRI plugin, with the runc and veil runtime handlers) and a
// small helper over the CRI v1 client for them. Run a private containerd
// in CRI mode with test/harness (Options.CRI); images come from
// test/criimage through the harness's registry. Test-only, never shipped.
package cri
