package jail

import (
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// KVMGroup is the group that owns /dev/kvm (or, when it is root's or
// absent, the host's "kvm" group): a jailed VMM that uses KVM gets it as
// a supplementary group.
func KVMGroup() (uint32, bool) {
	var st unix.Stat_t
	if err := unix.Stat("/dev/kvm", &st); err == nil && st.Gid != 0 {
		return st.Gid, true
	}
	if g, err := user.LookupGroup("kvm"); err == nil {
		if id, err := strconv.ParseUint(g.Gid, 10, 32); err == nil {
			return uint32(id), true
		}
	}
	return 0, false
}
