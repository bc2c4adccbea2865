package inspect

import (
	"testing"

	"github.com/veil-runtime/veil/test/harness"
)

// TestMain lets the test binary serve as runtime/statedir's mount
// namespace helper (the tests add containers to a sandbox's share).
func TestMain(m *testing.M) { harness.Main(m) }
