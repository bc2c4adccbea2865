package integration

import "testing"

func TestRepoRoot(t *testing.T) {
	root := RepoRoot()
	if root == "" || !isVeilModule(root+"/go.mod") {
		t.Fatalf("RepoRoot() = %q, not Veil's module root", root)
	}
}
