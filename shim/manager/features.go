package manager

import (
	"fmt"

	// core/runtime registers the runtime-spec features type with typeurl,
	// as containerd's client does when it decodes RuntimeInfo.
	_ "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/types/known/anypb"
)

// guestMountOptions are the mount options the guest's runc (libcontainer,
// in veil-agent) understands, as `runc features` lists them; "rro" (a
// recursive read-only bind) works because the guest kernel has
// mount_setattr.
var guestMountOptions = []string{
	"acl", "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
	"iversion", "lazytime", "loud", "mand", "noacl", "noatime", "nodev", "nodiratime",
	"noexec", "noiversion", "nolazytime", "nomand", "norelatime", "nostrictatime",
	"nosuid", "nosymfollow", "private", "ratime", "rbind", "rdev", "rdiratime",
	"relatime", "remount", "rexec", "rnoatime", "rnodev", "rnodiratime", "rnoexec",
	"rnorelatime", "rnostrictatime", "rnosuid", "rnosymfollow", "ro", "rprivate",
	"rrelatime", "rro", "rrw", "rshared", "rslave", "rstrictatime", "rsuid",
	"rsymfollow", "runbindable", "rw", "shared", "silent", "slave", "strictatime",
	"suid", "symfollow", "sync", "tmpcopyup", "unbindable",
}

// runtimeFeatures describes what a container spec may ask of Veil, for
// containerd's introspection (CRI enables recursive read-only mounts
// from it). Hooks are not listed: they would run on the host, and the
// guest drops them.
func runtimeFeatures() *features.Features {
	yes := true
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		MountOptions:  guestMountOptions,
		Linux: &features.Linux{
			Namespaces: []string{"cgroup", "ipc", "mount", "network", "pid", "uts"},
			Cgroup:     &features.Cgroup{V2: &yes, Systemd: new(bool)},
			Seccomp:    &features.Seccomp{Enabled: &yes},
		},
	}
}

// runtimeFeaturesAny is runtimeFeatures as RuntimeInfo carries it.
func runtimeFeaturesAny() (*anypb.Any, error) {
	a, err := typeurl.MarshalAnyToProto(runtimeFeatures())
	if err != nil {
		return nil, fmt.Errorf("encode runtime features: %w", err)
	}
	return a, nil
}
