package agent

import (
	"os"
	"testing"

	"github.com/moby/sys/reexec"
)

// TestMain lets the test binary serve as runtime/statedir's mount
// namespace helper (the tests add containers to a sandbox's share).
func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	os.Exit(m.Run())
}
