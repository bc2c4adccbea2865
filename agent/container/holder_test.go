package container

import (
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

func TestHolderFor(t *testing.T) {
	ns := func(ts ...configs.NamespaceType) configs.Namespaces {
		var out configs.Namespaces
		for _, t := range ts {
			out = append(out, configs.Namespace{Type: t})
		}
		return out
	}
	cg := &cgroups.Cgroup{Resources: &cgroups.Resources{}}
	cases := []struct {
		name      string
		cfg       configs.Config
		wantFlags uintptr
		wantErr   string
	}{
		{
			name:      "CRI pod",
			cfg:       configs.Config{Namespaces: ns(configs.NEWPID, configs.NEWIPC, configs.NEWUTS, configs.NEWNS, configs.NEWCGROUP), Cgroups: cg},
			wantFlags: unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNS,
		},
		{
			name:      "hostPID pod",
			cfg:       configs.Config{Namespaces: ns(configs.NEWIPC, configs.NEWUTS, configs.NEWNS), Cgroups: cg},
			wantFlags: unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNS,
		},
		{
			name:    "user namespace",
			cfg:     configs.Config{Namespaces: ns(configs.NEWPID, configs.NEWUSER), Cgroups: cg},
			wantErr: "cannot make a NEWUSER namespace",
		},
		{
			name:    "own network namespace",
			cfg:     configs.Config{Namespaces: ns(configs.NEWNET), Cgroups: cg},
			wantErr: "cannot make a NEWNET namespace",
		},
		{
			name:    "joined namespace",
			cfg:     configs.Config{Namespaces: configs.Namespaces{{Type: configs.NEWIPC, Path: "/proc/7/ns/ipc"}}, Cgroups: cg},
			wantErr: "joins NEWIPC at /proc/7/ns/ipc",
		},
		{
			name:    "no cgroup",
			cfg:     configs.Config{Namespaces: ns(configs.NEWPID)},
			wantErr: "no cgroup",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			flags, err := holderFor(&c.cfg)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || flags != c.wantFlags {
				t.Fatalf("flags %#x (%v), want %#x", flags, err, c.wantFlags)
			}
		})
	}
}

func TestIsHolder(t *testing.T) {
	if IsHolder() {
		t.Fatal("a test binary is not a holder")
	}
}
