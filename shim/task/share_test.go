package task

import (
	"testing"

	"github.com/veil-runtime/veil/agent/api"
)

func TestGuestRootfsPath(t *testing.T) {
	if got, want := guestRootfsPath("c1"), api.SharedDir+"/c1/rootfs"; got != want {
		t.Errorf("guest rootfs %q, want %q", got, want)
	}
}
