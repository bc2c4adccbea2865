package harness

import (
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/veil-runtime/veil/test/integration"
)

// Main is the TestMain of test binaries that use a sandbox's share (see
// integration.Main).
func Main(m *testing.M) { integration.Main(m) }

// WriteFile writes data to p, making its directories, or fails t.
func WriteFile(t testing.TB, p, data string) { t.Helper(); integration.WriteFile(t, p, data) }

// MountsOf lists the mounts of process pid's mount namespace, or fails t
// (see integration.MountsOf).
func MountsOf(t testing.TB, pid int) []*mountinfo.Info {
	t.Helper()
	return integration.MountsOf(t, pid)
}
