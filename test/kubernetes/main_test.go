package kubernetes

import (
	"testing"

	"github.com/veil-runtime/veil/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
