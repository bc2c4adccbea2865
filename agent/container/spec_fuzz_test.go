package container

import (
	"bytes"
	"encoding/json"
	"errors"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
)

// fuzzSpecSeeds are OCI specs as the host sends them, and hostile ones.
var fuzzSpecSeeds = []string{
	`{"ociVersion":"1.2.0","process":{"args":["sh"],"cwd":"/","apparmorProfile":"cri-default","selinuxLabel":"x"},` +
		`"root":{"path":"/host/bundle/rootfs"},"hooks":{"createRuntime":[{"path":"/usr/bin/host-hook"}]},` +
		`"mounts":[{"destination":"/proc","type":"proc","source":"proc"},` +
		`{"destination":"/etc/hosts","type":"bind","source":"/var/lib/containerd/hosts","options":["rbind","ro"]},` +
		`{"destination":"/data","source":"/run/veil/shared/c1/volume","options":["rbind"]},` +
		`{"destination":"/dev/shm","type":"bind","source":"/run/veil/shm"}],` +
		`"linux":{"cgroupsPath":"/default/c1","namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/cni-123"},` +
		`{"type":"ipc","path":"/proc/42/ns/ipc"},{"type":"mount"}],"sysctl":{"net.ipv4.ip_forward":"1","kernel.shmmax":"1"},` +
		`"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["socket","bind"],"action":"SCMP_ACT_ALLOW"}]},"mountLabel":"l","intelRdt":{}}}`,
	`{"process":{"args":["x"]},"mounts":[{"destination":"/x","type":"bind","source":"/run/veil/shared/../../../etc"},` +
		`{"destination":"/y","options":["bind"],"source":"/run/veil/sharedX/a"},{"destination":"/z","options":["rbind"],"source":"run/veil/shared/a"}],` +
		`"linux":{"cgroupsPath":"../../..","namespaces":[{"type":"network"}],"sysctl":{"net.core.x":"1"}}}`,
	`{"process":{"args":["x"]},"linux":{"cgroupsPath":"system.slice:cri:abc"}}`,
	`{"process":{"args":["x"]},"linux":{"cgroupsPath":"/"}}`,
	`{"process":{"args":["x"],"rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2},{"type":"RLIMIT_BOGUS"}],"execCPUAffinity":{"initial":"0-x"}}}`,
	`{"process":{"args":["x"]},"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"syscalls":[` +
		`{"names":["socket"],"action":"SCMP_ACT_LOG","args":[{"index":0,"value":40,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},` +
		`{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":4294967295,"valueTwo":40,"op":"SCMP_CMP_MASKED_EQ"}]},` +
		`{"names":["socket"],"action":"SCMP_ACT_TRACE","args":[{"index":0,"value":41,"op":"SCMP_CMP_LT"},{"index":1,"value":1,"op":"SCMP_CMP_GE"}]}]}}}`,
	`{"process":{"args":["x"]},"linux":{"seccomp":{"syscalls":[{"names":["socket"],"action":"SCMP_ACT_NOTIFY","args":[{"index":0,"value":0,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}}}`,
	`{"process":{"args":["x"]},"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[{"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}}}`,
	`{"process":{"args":[]}}`,
	`{"process":null}`,
	`{}`,
	`[]`,
	``,
	`{"process":{"args":["x"]},"linux":{"namespaces":[{"type":"cgroup","path":"/proc/1/ns/cgroup"},{"type":"uts","path":"/x"},{"type":"user","path":"/proc/1/ns/user"}]}}`,
}

// FuzzRewriteSpec decodes arbitrary bytes as an OCI spec and rewrites it
// for the guest. Errors must wrap errdefs.ErrInvalidArgument; an accepted
// spec must run only what the guest can give it: its root is the guest
// rootfs, no hooks, no host bind mounts (only binds from the share or the
// pod's shm), no host namespace paths (only the pod's), a cgroup
// namespace, a clean cgroup path under the guest root, no net.* sysctl
// left for runc without a network namespace, and with seccomp a profile
// where no permissive rule lets socket(AF_VSOCK) through. Rewriting again
// changes nothing.
func FuzzRewriteSpec(f *testing.F) {
	for i, s := range fuzzSpecSeeds {
		f.Add([]byte(s), "/run/veil/shared/c1/rootfs", i%2 == 0, i%3 != 0)
	}
	f.Add([]byte(fuzzSpecSeeds[0]), "relative/rootfs", true, true)
	f.Add([]byte(fuzzSpecSeeds[1]), "/run/veil/shared/c1/../../..", false, true)
	podNS := map[specs.LinuxNamespaceType]string{specs.IPCNamespace: "/proc/7/ns/ipc", specs.UTSNamespace: "/proc/7/ns/uts"}
	const id = "c1"
	f.Fuzz(func(t *testing.T, data []byte, rootfs string, terminal, seccomp bool) {
		s, err := ParseSpec(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParseSpec error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if s.Process == nil || len(s.Process.Args) == 0 {
			t.Fatalf("ParseSpec accepted a spec without a process to run")
		}
		var before []specs.LinuxSyscall
		if s.Linux != nil && s.Linux.Seccomp != nil {
			before = slices.Clone(s.Linux.Seccomp.Syscalls)
		}
		opts := RewriteOptions{Rootfs: rootfs, SharedDir: api.SharedDir, PodShmDir: api.PodShmDir,
			Terminal: terminal, Seccomp: seccomp, PodNamespaces: podNS}
		rw, err := RewriteSpec(s, id, opts)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || filepath.IsAbs(rootfs) {
				t.Fatalf("RewriteSpec(rootfs %q): %v", rootfs, err)
			}
			return
		}
		checkRewritten(t, s, rw, opts)
		if seccomp && len(before) <= 8 {
			checkFamilies(t, before, s.Linux.Seccomp)
		}
		if _, err := toLibcontainer(s.Process, true); err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("toLibcontainer error %v does not wrap ErrInvalidArgument", err)
		}
		// A fixed point: a rewritten spec rewrites to itself (compared
		// as JSON, which is what runc reads).
		once := marshalSpec(t, s)
		if _, err := RewriteSpec(s, id, opts); err != nil {
			t.Fatalf("second rewrite: %v", err)
		}
		if twice := marshalSpec(t, s); !bytes.Equal(once, twice) {
			t.Fatalf("second rewrite changed the spec:\n%s\n%s", once, twice)
		}
	})
}

func checkRewritten(t *testing.T, s *specs.Spec, rw Rewrite, opts RewriteOptions) {
	t.Helper()
	if s.Root == nil || s.Root.Path != filepath.Clean(opts.Rootfs) {
		t.Fatalf("root %+v, want %s", s.Root, filepath.Clean(opts.Rootfs))
	}
	if s.Hooks != nil {
		t.Fatalf("hooks kept: %+v", s.Hooks)
	}
	if p := s.Process; p.Terminal != opts.Terminal || p.ApparmorProfile != "" || p.SelinuxLabel != "" {
		t.Fatalf("process not rewritten: terminal %v apparmor %q selinux %q", p.Terminal, p.ApparmorProfile, p.SelinuxLabel)
	}
	for _, m := range s.Mounts {
		if !isBind(m) {
			continue
		}
		src := m.Source
		if !strings.HasPrefix(src, "/") || !(beneathDir(src, opts.SharedDir) || beneathDir(src, opts.PodShmDir)) {
			t.Fatalf("bind mount of host path %q kept", src)
		}
	}
	l := s.Linux
	hasNet, hasCgroup := false, false
	for _, ns := range l.Namespaces {
		hasNet = hasNet || ns.Type == specs.NetworkNamespace
		hasCgroup = hasCgroup || ns.Type == specs.CgroupNamespace
		if ns.Path != "" && ns.Path != opts.PodNamespaces[ns.Type] {
			t.Fatalf("%s namespace joins host path %q", ns.Type, ns.Path)
		}
	}
	if !hasCgroup {
		t.Fatalf("no cgroup namespace: %+v", l.Namespaces)
	}
	if !hasNet {
		for k := range l.Sysctl {
			if strings.HasPrefix(k, "net.") {
				t.Fatalf("net sysctl %q left for runc without a network namespace", k)
			}
		}
	}
	for k := range rw.NetSysctls {
		if !strings.HasPrefix(k, "net.") {
			t.Fatalf("non-net sysctl %q taken out for the guest", k)
		}
	}
	if c := l.CgroupsPath; !strings.HasPrefix(c, "/") || path.Clean(c) != c || c == "/" {
		t.Fatalf("cgroups path %q is not a clean path below the root", c)
	}
	if l.MountLabel != "" || l.IntelRdt != nil {
		t.Fatalf("mount label %q / intelRdt %+v kept", l.MountLabel, l.IntelRdt)
	}
	if !opts.Seccomp {
		if l.Seccomp != nil {
			t.Fatalf("seccomp profile kept by an agent without seccomp")
		}
		return
	}
	if l.Seccomp == nil || !slices.ContainsFunc(l.Seccomp.Syscalls, isVsockDeny) && !isDefault(vsockDeny(), l.Seccomp) {
		t.Fatalf("no AF_VSOCK denial in %+v", l.Seccomp)
	}
}

// beneathDir is the plain-string form of within: the cleaned path is dir
// or starts with dir + "/".
func beneathDir(p, dir string) bool {
	c := path.Clean(p)
	return c == dir || strings.HasPrefix(c, dir+"/")
}

func marshalSpec(t *testing.T, s *specs.Spec) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("marshal rewritten spec: %v", err)
	}
	return b
}

// FuzzParseProcess decodes arbitrary bytes as an exec's OCI process and
// converts it for libcontainer: errors must wrap ErrInvalidArgument, and
// an accepted process keeps its args, env and rlimits and gets a cwd.
func FuzzParseProcess(f *testing.F) {
	for _, s := range []string{
		`{"args":["sh","-c","echo hi"],"env":["PATH=/bin"],"cwd":"/work","user":{"uid":1000,"gid":1000,"additionalGids":[5,6]}}`,
		`{"args":["x"],"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"consoleSize":{"height":99999,"width":70000}}`,
		`{"args":["x"],"rlimits":[{"type":"rlimit_nofile"}]}`,
		`{"args":["x"],"capabilities":{"bounding":["CAP_SYS_ADMIN"],"effective":[]}}`,
		`{"args":["x"],"execCPUAffinity":{"initial":"0-3,7","final":"1"}}`,
		`{"args":["x"],"execCPUAffinity":{"initial":"99999999999-0"}}`,
		`{"args":["x"],"user":{"uid":4294967295}}`,
		`{"args":[]}`,
		`null`,
		`{"args":"x"}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProcess(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParseProcess error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		lp, err := toLibcontainer(p, false)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("toLibcontainer error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if !slices.Equal(lp.Args, p.Args) || !slices.Equal(lp.Env, p.Env) || len(lp.Rlimits) != len(p.Rlimits) || lp.Cwd == "" || lp.Init {
			t.Fatalf("process %+v converted to %+v", p, lp)
		}
	})
}
