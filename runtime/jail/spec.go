package jail

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Spec says how one helper is confined. The zero Spec changes nothing but
// what the parent does around the start (cgroup placement).
type Spec struct {
	// UID and GID are the helper's identity; 0 keeps root (virtiofsd,
	// which runs its own namespace sandbox).
	UID uint32 `json:"uid,omitempty"`
	GID uint32 `json:"gid,omitempty"`
	// Groups are supplementary groups (e.g. the group owning /dev/kvm).
	Groups []uint32 `json:"groups,omitempty"`
	// Namespaces gives the helper its own mount, PID, IPC, UTS and (unless
	// NetNS is set) network namespaces, and a root holding only /usr, the
	// host's library links, Binds and Devices.
	Namespaces bool `json:"namespaces,omitempty"`
	// NetNS, when set, is a network namespace file the helper joins
	// instead of getting an empty one (a VMM that opens taps by name).
	NetNS string `json:"netns,omitempty"`
	// Binds are files and directories shown in the root.
	Binds []Bind `json:"binds,omitempty"`
	// Devices are device nodes (e.g. /dev/kvm) shown at the same path,
	// read-write; /dev/null, /dev/zero, /dev/random and /dev/urandom
	// always are.
	Devices []string `json:"devices,omitempty"`
	// Rlimits are set before the helper runs.
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// OOMScoreAdj, when set, is the helper's oom_score_adj.
	OOMScoreAdj *int `json:"oom_score_adj,omitempty"`
	// NoNewPrivs sets no_new_privs (always set when UID is not 0).
	NoNewPrivs bool `json:"no_new_privs,omitempty"`
}

// Bind shows Source at Target (an absolute path in the helper's root).
type Bind struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	Writable bool   `json:"writable,omitempty"`
}

// Rlimit is one resource limit (unix.RLIMIT_*).
type Rlimit struct {
	Resource int    `json:"resource"`
	Soft     uint64 `json:"soft"`
	Hard     uint64 `json:"hard"`
}

// alwaysDevices are the device nodes every jailed root has.
var alwaysDevices = []string{"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"}

// Validate checks a Spec before any process is started.
func (s *Spec) Validate() error {
	if s.UID == 0 && s.GID != 0 || s.UID != 0 && s.GID == 0 {
		return fmt.Errorf("jail: uid %d with gid %d: both or neither must be root", s.UID, s.GID)
	}
	for _, b := range s.Binds {
		if err := checkAbs("bind source", b.Source); err != nil {
			return err
		}
		if err := checkAbs("bind target", b.Target); err != nil {
			return err
		}
		if b.Target == "/" || b.Target == "/usr" || strings.HasPrefix(b.Target, "/usr/") || strings.HasPrefix(b.Target, "/dev/") {
			return fmt.Errorf("jail: bind target %q is reserved", b.Target)
		}
	}
	for _, d := range s.Devices {
		if err := checkAbs("device", d); err != nil {
			return err
		}
		if !strings.HasPrefix(d, "/dev/") {
			return fmt.Errorf("jail: device %q is not below /dev", d)
		}
	}
	if (len(s.Binds) > 0 || len(s.Devices) > 0) && !s.Namespaces {
		return fmt.Errorf("jail: binds and devices need namespaces")
	}
	return nil
}

func checkAbs(what, p string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("jail: %s %q is not a clean absolute path", what, p)
	}
	return nil
}

// dropsPrivileges reports whether the helper runs as another user.
func (s *Spec) dropsPrivileges() bool { return s.UID != 0 }
