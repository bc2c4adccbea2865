package jail_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/test/integration"
)

func TestMain(m *testing.M) { integration.Main(m) }

const testUID = 3_999_000_001

// startJailed starts argv through the jail with spec and waits until the
// stage has exec'd it.
func startJailed(t *testing.T, spec *jail.Spec, argv ...string) *proc.Process {
	t.Helper()
	dir := t.TempDir()
	p, err := proc.Start(context.Background(), proc.Spec{Name: "h", Dir: dir, Path: argv[0], Args: argv[1:], Jail: spec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background(), 0) })
	return p
}

// waitExec waits until pid runs exe (the stage exec'd the helper).
func waitExec(t *testing.T, p *proc.Process, exe string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(p.Pid()), "exe"))
		if got == exe {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("helper exited: %v", p.ExitError())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d runs %q, not %s", p.Pid(), got, exe)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func status(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func TestJailedHelper(t *testing.T) {
	integration.Require(t, integration.Root)
	adj := 321
	spec := &jail.Spec{
		UID: testUID, GID: testUID, Namespaces: true, OOMScoreAdj: &adj,
		Rlimits: []jail.Rlimit{{Resource: unix.RLIMIT_NOFILE, Soft: 77, Hard: 77}, {Resource: unix.RLIMIT_FSIZE, Soft: 1 << 20, Hard: 1 << 20}},
	}
	p := startJailed(t, spec, "sleep", "1000")
	waitExec(t, p, "/usr/bin/sleep")
	st := status(t, p.Pid())
	u := strconv.Itoa(testUID)
	for k, want := range map[string]string{
		"Uid": u + "\t" + u + "\t" + u + "\t" + u, "Gid": u + "\t" + u + "\t" + u + "\t" + u,
		"Groups": "", "NoNewPrivs": "1", "CapBnd": "0000000000000000", "CapEff": "0000000000000000", "CapPrm": "0000000000000000",
	} {
		if st[k] != want {
			t.Errorf("%s: %q, want %q", k, st[k], want)
		}
	}
	if f := strings.Fields(st["NSpid"]); len(f) != 2 || f[1] != "1" {
		t.Errorf("NSpid %q: not pid 1 of its own PID namespace", st["NSpid"])
	}
	for _, ns := range []string{"mnt", "pid", "ipc", "uts", "net"} {
		self, _ := os.Readlink("/proc/self/ns/" + ns)
		if ns == "pid" {
			self, _ = os.Readlink("/proc/self/ns/pid_for_children")
		}
		got, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(p.Pid()), "ns", ns))
		if got == "" || got == self {
			t.Errorf("%s namespace %q: the host's (%q)", ns, got, self)
		}
	}
	var root, host unix.Stat_t
	if err := unix.Stat(filepath.Join("/proc", strconv.Itoa(p.Pid()), "root")+"/", &root); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/", &host); err != nil {
		t.Fatal(err)
	}
	if root.Ino == host.Ino && root.Dev == host.Dev {
		t.Error("root directory is the host's")
	}
	adjB, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid()), "oom_score_adj"))
	if strings.TrimSpace(string(adjB)) != "321" {
		t.Errorf("oom_score_adj %q, want 321", adjB)
	}
	limits, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid()), "limits"))
	for _, want := range []string{"Max open files            77                   77", "Max file size             1048576              1048576"} {
		if !bytes.Contains(limits, []byte(want)) {
			t.Errorf("limits lack %q:\n%s", want, limits)
		}
	}
}

// TestJailRootHoldsOnlyWhatItNeeds runs a shell in the jail: its root
// holds /usr, the library links, /dev's basics and the binds, it cannot
// write there, and a bind is read-only unless asked.
func TestJailRootHoldsOnlyWhatItNeeds(t *testing.T) {
	integration.Require(t, integration.Root)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "kernel"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	rw := t.TempDir()
	if err := os.Chown(rw, testUID, testUID); err != nil {
		t.Fatal(err)
	}
	spec := &jail.Spec{UID: testUID, GID: testUID, Namespaces: true, Binds: []jail.Bind{
		{Source: filepath.Join(src, "kernel"), Target: "/vm/kernel"},
		{Source: rw, Target: "/sock", Writable: true},
	}}
	script := `ls / | tr '\n' ' '; echo; cat /vm/kernel; echo; ` +
		`touch /x 2>/dev/null && echo root-writable; echo >/vm/kernel 2>/dev/null && echo kernel-writable; ` +
		`touch /sock/ok && echo sock-writable; ls /dev | tr '\n' ' '; echo; ls /proc 2>&1 | head -1; id -u`
	dir := t.TempDir()
	p, err := proc.Start(context.Background(), proc.Spec{Name: "sh", Dir: dir, Path: "sh", Args: []string{"-c", script}, Jail: spec})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	out, _ := os.ReadFile(p.LogPath())
	got := string(out)
	t.Logf("jailed shell:\n%s", got)
	for _, want := range []string{"bin dev lib lib64 sbin sock usr vm \n", "\nk\n", "sock-writable", "null random urandom zero", strconv.Itoa(testUID)} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q", want)
		}
	}
	for _, bad := range []string{"root-writable", "kernel-writable"} {
		if strings.Contains(got, bad) {
			t.Errorf("%s", bad)
		}
	}
}

// TestStageWaitsForRelease: a stage whose parent gives up runs nothing.
func TestStageAbort(t *testing.T) {
	integration.Require(t, integration.Root)
	marker := filepath.Join(t.TempDir(), "ran")
	cmd := exec.Command("sh", "-c", "touch "+marker)
	st, err := jail.Prepare(cmd, &jail.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	st.Abort()
	err = cmd.Wait()
	if _, serr := os.Stat(marker); serr == nil {
		t.Fatal("the helper ran without a release")
	}
	if err == nil || !strings.Contains(stderr.String(), "gave up") {
		t.Fatalf("stage: %v, %q", err, stderr.String())
	}
}

// BenchmarkStage measures the jail stage alone: start /usr/bin/true
// through it (own namespaces, root, uid, rlimits) and wait for its exit,
// against starting it directly.
func BenchmarkStage(b *testing.B) {
	integration.Require(b, integration.Root)
	for _, tc := range []struct {
		name string
		spec *jail.Spec
	}{
		{name: "direct"},
		{name: "jailed", spec: &jail.Spec{UID: testUID, GID: testUID, Namespaces: true,
			Rlimits: []jail.Rlimit{{Resource: unix.RLIMIT_NOFILE, Soft: 4096, Hard: 4096}}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			for i := 0; i < b.N; i++ {
				p, err := proc.Start(context.Background(), proc.Spec{Name: "t", Dir: dir, Path: "/usr/bin/true", Jail: tc.spec})
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Err(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestOOMScoreAdjLowering: a pod's oom_score_adj below the shim's needs
// CAP_SYS_RESOURCE; without it (some hosts withhold it from root) the
// helper keeps the inherited value instead of failing to start.
func TestOOMScoreAdjLowering(t *testing.T) {
	integration.Require(t, integration.Root)
	cur, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	inherited, _ := strconv.Atoi(strings.TrimSpace(string(cur)))
	low := -998
	p := startJailed(t, &jail.Spec{OOMScoreAdj: &low}, "sleep", "1000")
	waitExec(t, p, "/usr/bin/sleep")
	got, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid()), "oom_score_adj"))
	switch v, _ := strconv.Atoi(strings.TrimSpace(string(got))); v {
	case low:
	case inherited:
		if log, _ := os.ReadFile(p.LogPath()); !bytes.Contains(log, []byte("needs CAP_SYS_RESOURCE")) {
			t.Errorf("kept %d without saying why in the log: %q", v, log)
		}
	default:
		t.Errorf("oom_score_adj %d, want %d or the inherited %d", v, low, inherited)
	}
}
