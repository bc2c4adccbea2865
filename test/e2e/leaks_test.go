package e2e

import (
	"strings"
	"testing"

	"github.com/veil-runtime/veil/test/harness"
)

// checkNoLeftovers fails the test when the sandbox of id left anything.
func checkNoLeftovers(t *testing.T, stateDir, id string) {
	t.Helper()
	if l := harness.Leftovers(stateDir, id); len(l) > 0 {
		t.Errorf("sandbox %s left behind:\n  %s", id, strings.Join(l, "\n  "))
	}
}
