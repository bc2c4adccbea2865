package hostcheck

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor/registry"
	"github.com/veil-runtime/veil/runtime/jail"
)

// want is what a check must return: its status, substrings of its
// detail, and of its fix (a check that is neither OK nor SKIP must have
// one).
type want struct {
	status Status
	detail []string
	fix    []string
}

func (w want) verify(t *testing.T, name string, got Result) {
	t.Helper()
	if got.Name != name {
		t.Errorf("name %q, want %q", got.Name, name)
	}
	if got.Status != w.status {
		t.Errorf("status %s, want %s (detail %q)", got.Status, w.status, got.Detail)
	}
	for _, s := range w.detail {
		if !strings.Contains(got.Detail, s) {
			t.Errorf("detail %q lacks %q", got.Detail, s)
		}
	}
	for _, s := range w.fix {
		if !strings.Contains(got.Fix, s) {
			t.Errorf("fix %q lacks %q", got.Fix, s)
		}
	}
	if got.Status != OK && got.Status != Skip && got.Fix == "" {
		t.Errorf("%s without a fix: %q", got.Status, got.Detail)
	}
}

const (
	passwdBase = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/sh\n"
	groupBase  = "root:x:0:\nkvm:x:993:\nalice:x:1000:\n"
	subidBase  = "alice:100000:65536\n"
)

func idFiles(passwd, group, subuid, subgid string) map[string]string {
	return map[string]string{"/etc/passwd": passwd, "/etc/group": group, "/etc/subuid": subuid, "/etc/subgid": subgid}
}

func TestUIDRange(t *testing.T) {
	base := idFiles(passwdBase, groupBase, subidBase, subidBase)
	cases := []struct {
		name  string
		files map[string]string
		cfg   func(j *config.Jail)
		want  want
	}{
		{name: "default range free", files: base,
			want: want{status: OK, detail: []string{"3000000000-3000065535 (jail.uid_base 3000000000, jail.uid_count 65536)", "used by no user"}}},
		{name: "no id files", files: map[string]string{},
			want: want{status: OK, detail: []string{"(no /etc/passwd, /etc/group, /etc/subuid, /etc/subgid)"}}},
		{name: "user's uid inside", files: with(base, map[string]string{"/etc/passwd": passwdBase + "svc:x:3000000005:100::/:/bin/sh\n"}),
			want: want{status: Warn, detail: []string{"uid 3000000005 (svc in /etc/passwd)", "signal or trace"}, fix: []string{"jail.uid_base", "jail.uid_count"}}},
		{name: "user's primary gid inside", files: with(base, map[string]string{"/etc/passwd": passwdBase + "svc:x:2000:3000065535::/:/bin/sh\n"}),
			want: want{status: Warn, detail: []string{"gid 3000065535 (svc in /etc/passwd)"}}},
		{name: "group inside", files: with(base, map[string]string{"/etc/group": groupBase + "big:x:3000000000:\n"}),
			want: want{status: Warn, detail: []string{"gid 3000000000 (big in /etc/group)"}}},
		{name: "subuid range overlaps the start", files: with(base, map[string]string{"/etc/subuid": subidBase + "bob:2999999000:65536\n"}),
			want: want{status: Warn, detail: []string{"subuid range 2999999000-3000064535 (bob in /etc/subuid)"}}},
		{name: "subgid range overlaps the end", files: with(base, map[string]string{"/etc/subgid": subidBase + "bob:3000065535:10\n"}),
			want: want{status: Warn, detail: []string{"subgid range 3000065535-3000065544 (bob in /etc/subgid)"}}},
		{name: "subuid range covers it", files: with(base, map[string]string{"/etc/subuid": "k8s:2000000000:2000000000\n"}),
			want: want{status: Warn, detail: []string{"subuid range 2000000000-3999999999"}}},
		{name: "adjacent ranges and ids", files: idFiles(passwdBase+"lo:x:2999999999:2999999999::/:/bin/sh\nhi:x:3000065536:1::/:/bin/sh\n", groupBase,
			"a:2999934464:65536\nb:3000065536:65536\n", "a:2999934464:65536\n"),
			want: want{status: OK}},
		{name: "custom range on the usual subuid range", files: base, cfg: func(j *config.Jail) { j.UIDBase, j.UIDCount = 100000, 65536 },
			want: want{status: Warn, detail: []string{"100000-165535", "subuid range 100000-165535 (alice in /etc/subuid)", "subgid range 100000-165535 (alice in /etc/subgid)"}}},
		{name: "custom range on a user", files: base, cfg: func(j *config.Jail) { j.UIDBase, j.UIDCount = 1000, 1 },
			want: want{status: Warn, detail: []string{"uid 1000 (alice in /etc/passwd)", "gid 1000 (alice in /etc/passwd)", "gid 1000 (alice in /etc/group)"}}},
		{name: "many clashes are cut", files: with(base, map[string]string{"/etc/group": groupBase + "g1:x:3000000001:\ng2:x:3000000002:\ng3:x:3000000003:\ng4:x:3000000004:\ng5:x:3000000005:\ng6:x:3000000006:\n"}),
			want: want{status: Warn, detail: []string{"g4 in /etc/group", "and 2 more"}}},
		{name: "comments and junk are ignored", files: with(base, map[string]string{"/etc/passwd": "# comment\n\nbroken\nx:x:notanumber:1\n" + passwdBase}),
			want: want{status: OK}},
		{name: "jail disabled", files: with(base, map[string]string{"/etc/passwd": passwdBase + "svc:x:3000000005:100::/:/bin/sh\n"}), cfg: func(j *config.Jail) { j.Enabled = false },
			want: want{status: OK, detail: []string{"not checked: jail.enabled = false"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			if tc.cfg != nil {
				tc.cfg(&cfg.Jail)
			}
			tc.want.verify(t, nameUIDRange, checkUIDRange(cfg, fakeHost(t, tc.files)))
		})
	}
}

func TestJailCheck(t *testing.T) {
	cases := []struct {
		name string
		cfg  func(j *config.Jail)
		try  func(ctx context.Context, s *jail.Spec) error // nil: a fake root
		want want
	}{
		{name: "fake root", want: want{status: Skip, detail: []string{"not the local host"}}},
		{name: "not root", try: func(context.Context, *jail.Spec) error { return &SkipError{Reason: "not tried: not root"} },
			want: want{status: Skip, detail: []string{"not tried: not root"}}},
		{name: "stage fails", try: func(context.Context, *jail.Spec) error {
			return errors.New("veil-jail: build root: open_tree /usr: function not implemented (exit status 125)")
		}, want: want{status: Fail, detail: []string{"/usr/bin/true as uid 3000065535 in the jail: veil-jail: build root: open_tree /usr: function not implemented"},
			fix: []string{"Linux 5.12", "jail.enabled = false"}}},
		{name: "runs", try: func(context.Context, *jail.Spec) error { return nil },
			want: want{status: OK, detail: []string{"ran /usr/bin/true as uid/gid 3000065535", "no capabilities", "RLIMIT_NOFILE 4096", "RLIMIT_FSIZE 64 MiB"}}},
		{name: "runs with a custom range", cfg: func(j *config.Jail) { j.UIDBase, j.UIDCount = 200000, 10 }, try: func(context.Context, *jail.Spec) error { return nil },
			want: want{status: OK, detail: []string{"uid/gid 200009"}}},
		{name: "disabled", cfg: func(j *config.Jail) { j.Enabled = false }, try: func(context.Context, *jail.Spec) error { t.Error("tried a disabled jail"); return nil },
			want: want{status: Warn, detail: []string{"jail.enabled = false", "run as root"}, fix: []string{"jail.enabled = true"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			if tc.cfg != nil {
				tc.cfg(&cfg.Jail)
			}
			h := fakeHost(t, nil)
			if tc.try != nil {
				h.TryJail = func(ctx context.Context, s *jail.Spec) error {
					last := cfg.Jail.UIDBase + cfg.Jail.UIDCount - 1
					if s.UID != last || s.GID != last || !s.Namespaces || !s.NoNewPrivs {
						t.Errorf("tried %+v, want uid/gid %d with namespaces and no_new_privs", s, last)
					}
					if err := s.Validate(); err != nil {
						t.Error(err)
					}
					rl := map[int]uint64{}
					for _, r := range s.Rlimits {
						rl[r.Resource] = r.Hard
					}
					if rl[unix.RLIMIT_NOFILE] != cfg.Jail.RlimitNofile || rl[unix.RLIMIT_FSIZE] != cfg.Jail.RlimitFsizeMiB<<20 {
						t.Errorf("rlimits %v", s.Rlimits)
					}
					return tc.try(ctx, s)
				}
			}
			tc.want.verify(t, nameJail, checkJail(context.Background(), cfg, h))
		})
	}
}

func TestSeccomp(t *testing.T) {
	const actions = "kill_process kill_thread trap errno user_notif trace log allow"
	kernel := map[string]string{
		"/proc/sys/kernel/seccomp/actions_avail": actions,
		"/proc/self/status":                      "Name:\tx\nSeccomp:\t0\nSeccomp_filters:\t0\n",
		"/usr/bin/qemu-system-x86_64":            "x",
	}
	probeOK := func(context.Context, string) error { return nil }
	cases := []struct {
		name  string
		files map[string]string
		cfg   func(c *config.Config)
		hv    string
		probe func(ctx context.Context, path string) error // nil: a fake root
		want  want
	}{
		{name: "kernel filters and qemu -sandbox", files: kernel, probe: probeOK,
			want: want{status: OK, detail: []string{"kernel seccomp filters (actions: " + actions + ")", "/usr/bin/qemu-system-x86_64 starts with -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"}}},
		{name: "qemu without libseccomp", files: kernel, probe: func(context.Context, string) error {
			return errors.New("qemu-system-x86_64: -sandbox on,obsolete=deny: -sandbox is not supported by this QEMU binary (exit status 1)")
		}, want: want{status: Fail, detail: []string{"does not start with -sandbox", "not supported by this QEMU binary"}, fix: []string{"libseccomp", "jail.enabled = false"}}},
		{name: "probe skipped", files: kernel, probe: func(context.Context, string) error { return &SkipError{Reason: "no"} },
			want: want{status: OK, detail: []string{"not probed: no"}}},
		{name: "configured qemu probed", files: with(kernel, map[string]string{"/opt/qemu": "x"}), cfg: func(c *config.Config) { c.Hypervisor.QEMUPath = "/opt/qemu" },
			probe: func(_ context.Context, p string) error {
				if p != "/opt/qemu" {
					t.Errorf("probed %s", p)
				}
				return nil
			}, want: want{status: OK, detail: []string{"/opt/qemu starts with -sandbox"}}},
		{name: "fake root: no probe", files: kernel,
			want: want{status: OK, detail: []string{"not probed (not the local host)"}}},
		{name: "qemu missing", files: with(kernel, nil, "/usr/bin/qemu-system-x86_64"), probe: probeOK,
			want: want{status: OK, detail: []string{"not probed: qemu-system-x86_64 not found"}}},
		{name: "kernel before 4.14", files: with(kernel, map[string]string{"/proc/self/status": "Name:\tx\nSeccomp:\t0\n"}, "/proc/sys/kernel/seccomp/actions_avail"), probe: probeOK,
			want: want{status: OK, detail: []string{"before Linux 4.14", "starts with -sandbox"}}},
		{name: "kernel without seccomp", files: with(kernel, map[string]string{"/proc/self/status": "Name:\tx\nNoNewPrivs:\t0\n"}, "/proc/sys/kernel/seccomp/actions_avail"), probe: probeOK,
			want: want{status: Fail, detail: []string{"no Seccomp: line"}, fix: []string{"CONFIG_SECCOMP_FILTER"}}},
		{name: "no /proc", files: map[string]string{}, probe: probeOK,
			want: want{status: Warn, detail: []string{"cannot read /proc/self/status"}}},
		{name: "cloud-hypervisor", files: kernel, hv: config.HypervisorCloudHypervisor,
			probe: func(context.Context, string) error { t.Error("probed QEMU for cloud-hypervisor"); return nil },
			want:  want{status: OK, detail: []string{"cloud-hypervisor installs its own filters"}}},
		{name: "jail disabled", files: kernel, cfg: func(c *config.Config) { c.Jail.Enabled = false },
			probe: func(context.Context, string) error { t.Error("probed QEMU without the jail"); return nil },
			want:  want{status: OK, detail: []string{"QEMU runs without -sandbox (jail.enabled = false)"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			if tc.cfg != nil {
				tc.cfg(cfg)
			}
			hv := tc.hv
			if hv == "" {
				hv = config.HypervisorQEMU
			}
			h := fakeHost(t, tc.files)
			h.ProbeQEMUSandbox = tc.probe
			tc.want.verify(t, nameSeccomp, checkSeccomp(context.Background(), cfg, h, hv))
		})
	}
}

// Mount tables: mountinfoHybrid is this project's CI host (cgroup v1,
// every controller mounted alone, cgroup2 at unified/ without
// controllers).
const (
	mountinfoHybrid = `22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
37 30 0:34 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	mountinfoV1Comounted = `22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
30 22 0:27 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
38 30 0:35 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
`
	mountinfoV2 = `22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
30 22 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	procCgroupsHybrid = `#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	4	1
cpu	1	4	1
cpuacct	2	4	1
blkio	7	4	1
memory	4	33	1
devices	5	4	1
freezer	6	4	1
pids	8	4	1
hugetlb	0	4	1
`
	procCgroupsV2 = `#subsys_name	hierarchy	num_cgroups	enabled
cpu	0	80	1
memory	0	80	1
pids	0	80	1
`
)

func TestCgroupControllers(t *testing.T) {
	hybrid := map[string]string{"/proc/self/mountinfo": mountinfoHybrid, "/proc/cgroups": procCgroupsHybrid,
		"/sys/fs/cgroup/memory/memory.use_hierarchy": "1\n", "/sys/fs/cgroup/unified/cgroup.controllers": "hugetlb\n"}
	v2 := map[string]string{"/proc/self/mountinfo": mountinfoV2, "/proc/cgroups": procCgroupsV2,
		"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n"}
	cases := []struct {
		name  string
		files map[string]string
		cfg   func(c *config.Cgroups)
		want  want
	}{
		{name: "v1 hybrid, cpu and cpuacct separate", files: hybrid,
			want: want{status: OK, detail: []string{"cgroup v1: memory at /sys/fs/cgroup/memory, cpu at /sys/fs/cgroup/cpu, cpuacct at /sys/fs/cgroup/cpuacct, pids at /sys/fs/cgroup/pids"}}},
		{name: "v1 cpu,cpuacct co-mounted", files: map[string]string{"/proc/self/mountinfo": mountinfoV1Comounted},
			want: want{status: OK, detail: []string{"cpu at /sys/fs/cgroup/cpu,cpuacct, cpuacct at /sys/fs/cgroup/cpu,cpuacct"}}},
		{name: "v1 pids not mounted", files: with(hybrid, map[string]string{"/proc/self/mountinfo": strings.Replace(mountinfoHybrid, "38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n", "", 1),
			"/proc/cgroups": strings.Replace(procCgroupsHybrid, "pids\t8", "pids\t0", 1)}),
			want: want{status: Fail, detail: []string{"not mounted: pids (no v1 hierarchy mounted)"}, fix: []string{"mount -t cgroup -o pids", "cgroups.enabled = false"}}},
		{name: "v1 memory disabled on the command line", files: with(hybrid, map[string]string{"/proc/self/mountinfo": strings.Replace(mountinfoHybrid, "rw,memory\n", "rw,hugetlb\n", 1),
			"/proc/cgroups": strings.Replace(procCgroupsHybrid, "memory\t4\t33\t1", "memory\t0\t1\t0", 1)}),
			want: want{status: Fail, detail: []string{"memory (disabled on the kernel command line)"}}},
		{name: "v1 kernel without pids", files: with(hybrid, map[string]string{"/proc/self/mountinfo": strings.Replace(mountinfoHybrid, "rw,pids\n", "rw,hugetlb\n", 1),
			"/proc/cgroups": strings.Replace(procCgroupsHybrid, "pids\t8\t4\t1\n", "", 1)}),
			want: want{status: Fail, detail: []string{"pids (not in this kernel)"}}},
		{name: "v1 memory.use_hierarchy 0", files: with(hybrid, map[string]string{"/sys/fs/cgroup/memory/memory.use_hierarchy": "0\n"}),
			want: want{status: Fail, detail: []string{"/sys/fs/cgroup/memory/memory.use_hierarchy is 0"}, fix: []string{"echo 1 >"}}},
		{name: "v1 without mountinfo: directories", files: v1Dirs,
			want: want{status: OK, detail: []string{"cgroup v1: memory at /sys/fs/cgroup/memory"}}},
		{name: "v1 without mountinfo: cpuacct missing", files: with(v1Dirs, nil, "/sys/fs/cgroup/cpuacct/tasks"),
			want: want{status: Fail, detail: []string{"not mounted: cpuacct"}}},
		{name: "no cgroups at all", files: map[string]string{},
			want: want{status: Fail, detail: []string{"memory, cpu, cpuacct, pids"}}},
		{name: "v2 with every controller", files: v2,
			want: want{status: OK, detail: []string{"cgroup v2: memory, cpu, pids available", "without CRI go below /veil"}}},
		{name: "v2 without mountinfo", files: map[string]string{"/sys/fs/cgroup/cgroup.controllers": "cpu memory pids"},
			want: want{status: OK, detail: []string{"cgroup v2"}}},
		{name: "v2 pids held by a v1 hierarchy", files: with(v2, map[string]string{"/sys/fs/cgroup/cgroup.controllers": "cpu memory\n",
			"/proc/cgroups": strings.Replace(procCgroupsV2, "pids\t0", "pids\t3", 1)}),
			want: want{status: Fail, detail: []string{"missing from /sys/fs/cgroup/cgroup.controllers: pids (bound to a cgroup v1 hierarchy)"}, fix: []string{"cgroups.enabled = false"}}},
		{name: "v2 memory disabled", files: with(v2, map[string]string{"/sys/fs/cgroup/cgroup.controllers": "cpu pids\n",
			"/proc/cgroups": strings.Replace(procCgroupsV2, "memory\t0\t80\t1", "memory\t0\t1\t0", 1)}),
			want: want{status: Fail, detail: []string{"memory (disabled on the kernel command line)"}}},
		{name: "v2 root cgroup.controllers unreadable", files: map[string]string{"/proc/self/mountinfo": mountinfoV2},
			want: want{status: Fail, detail: []string{"cgroup v2:"}, fix: []string{"mount cgroup2"}}},
		{name: "v2 parent ready", files: with(v2, map[string]string{"/sys/fs/cgroup/veil/cgroup.controllers": "cpu memory pids", "/sys/fs/cgroup/veil/cgroup.subtree_control": "cpu memory pids", "/sys/fs/cgroup/veil/cgroup.procs": ""}),
			want: want{status: OK}},
		{name: "v2 parent holds processes", files: with(v2, map[string]string{"/sys/fs/cgroup/veil/cgroup.controllers": "cpu memory pids", "/sys/fs/cgroup/veil/cgroup.subtree_control": "memory", "/sys/fs/cgroup/veil/cgroup.procs": "4242\n"}),
			want: want{status: Fail, detail: []string{"/sys/fs/cgroup/veil (on the way to cgroups.parent /veil) cannot enable for its children: cpu (it holds processes), pids (it holds processes)"}, fix: []string{"cgroups.parent"}}},
		{name: "v2 nested parent not handed controllers", cfg: func(c *config.Cgroups) { c.Parent = "/system.slice/veil" },
			files: with(v2, map[string]string{"/sys/fs/cgroup/system.slice/cgroup.controllers": "cpu memory pids", "/sys/fs/cgroup/system.slice/cgroup.subtree_control": "cpu memory pids",
				"/sys/fs/cgroup/system.slice/veil/cgroup.controllers": "memory pids", "/sys/fs/cgroup/system.slice/veil/cgroup.subtree_control": "memory pids"}),
			want: want{status: Fail, detail: []string{"/sys/fs/cgroup/system.slice/veil", "cpu (not handed down by its parent)"}}},
		{name: "disabled", cfg: func(c *config.Cgroups) { c.Enabled = false }, files: map[string]string{},
			want: want{status: OK, detail: []string{"cgroups.enabled = false"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			if tc.cfg != nil {
				tc.cfg(&cfg.Cgroups)
			}
			tc.want.verify(t, nameCgroupControllers, checkCgroupControllers(cfg, fakeHost(t, tc.files)))
		})
	}
}

func TestKVMGroup(t *testing.T) {
	cases := []struct {
		name      string
		used      bool
		noKVM     bool
		mode      os.FileMode
		uid, gid  int // -1: leave the file's owner (the test's user)
		jailOff   bool
		needsRoot bool
		want      want
	}{
		{name: "KVM not used", uid: -1, gid: -1, mode: 0o600, want: want{status: Skip, detail: []string{"TCG"}}},
		{name: "no /dev/kvm", used: true, noKVM: true, uid: -1, gid: -1, want: want{status: Skip, detail: []string{"KVM not used"}}},
		{name: "root:root 0600", used: true, uid: 0, gid: 0, mode: 0o600, needsRoot: true,
			want: want{status: Fail, detail: []string{"/dev/kvm is root:root 0600", "cannot open it"}, fix: []string{"chmod 0660 /dev/kvm", "udev"}}},
		{name: "owner only 0600", used: true, uid: -1, gid: -1, mode: 0o600,
			want: want{status: Fail, detail: []string{"0600", "cannot open it"}}},
		{name: "root:kvm 0660", used: true, uid: 0, gid: 993, mode: 0o660, needsRoot: true,
			want: want{status: OK, detail: []string{"/dev/kvm is root:kvm 0660", "group kvm (gid 993)"}}},
		{name: "root:root 0660", used: true, uid: 0, gid: 0, mode: 0o660, needsRoot: true,
			want: want{status: Fail, detail: []string{"root:root 0660"}}},
		{name: "root:kvm 0640", used: true, uid: 0, gid: 993, mode: 0o640, needsRoot: true,
			want: want{status: Fail, detail: []string{"root:kvm 0640"}}},
		{name: "0666", used: true, uid: -1, gid: -1, mode: 0o666,
			want: want{status: OK, detail: []string{"0666: every user"}}},
		{name: "jail off", used: true, uid: -1, gid: -1, mode: 0o600, jailOff: true,
			want: want{status: OK, detail: []string{"as root (jail.enabled = false)"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needsRoot && os.Geteuid() != 0 {
				t.Skip("needs root to chown the fake /dev/kvm")
			}
			files := map[string]string{"/etc/passwd": passwdBase, "/etc/group": groupBase}
			if !tc.noKVM {
				files["/dev/kvm"] = ""
			}
			h := fakeHost(t, files)
			if !tc.noKVM {
				p := filepath.Join(h.Root, "dev/kvm")
				if err := os.Chown(p, tc.uid, tc.gid); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			cfg := config.Default()
			cfg.Jail.Enabled = !tc.jailOff
			tc.want.verify(t, nameKVMGroup, checkKVMGroup(cfg, h, tc.used))
		})
	}
}

func TestStageFailure(t *testing.T) {
	cases := []struct{ name, log, want string }{
		{"stage lines", "noise\nveil-jail: build root: open_tree /usr: function not implemented\n", "veil-jail: build root: open_tree /usr: function not implemented"},
		{"two stage lines", "veil-jail: a\nveil-jail: b\n", "veil-jail: a; veil-jail: b"},
		{"helper's own output", "true: failed\n\n", "true: failed"},
		{"empty", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := stageFailure([]byte(tc.log)); got != tc.want {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
}

func TestTunForJailedCH(t *testing.T) {
	cases := []struct {
		name string
		mode os.FileMode
		hv   string
		jail bool
		want Status
	}{
		{name: "qemu gets its taps from the shim", mode: 0o600, hv: config.HypervisorQEMU, jail: true, want: OK},
		{name: "jailed ch with 0666", mode: 0o666, hv: config.HypervisorCloudHypervisor, jail: true, want: OK},
		{name: "jailed ch with 0600", mode: 0o600, hv: config.HypervisorCloudHypervisor, jail: true, want: Fail},
		{name: "unjailed ch with 0600", mode: 0o600, hv: config.HypervisorCloudHypervisor, jail: false, want: OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHost(t, map[string]string{"/dev/net/tun": ""})
			if err := os.Chmod(filepath.Join(h.Root, "dev/net/tun"), tc.mode); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.Jail.Enabled = tc.jail
			e, ok := registry.Lookup(tc.hv)
			if !ok {
				t.Fatalf("no registry entry %q", tc.hv)
			}
			if got := checkTun(cfg, h, e); got.Status != tc.want {
				t.Fatalf("%+v, want %s", got, tc.want)
			}
		})
	}
}
