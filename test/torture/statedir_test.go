package torture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/cri"
	"github.com/veil-runtime/veil/test/harness"
)

// smallStateDir mounts a tmpfs of size for the test's state_dir (short:
// sockets under it must fit 107 bytes) and unmounts it at the end.
func smallStateDir(t testing.TB, size string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "vtf-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("veil-torture", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size+",mode=0711"); err != nil {
		_ = os.Remove(dir)
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		_ = os.Remove(dir)
	})
	return dir
}

// fill writes a file until the filesystem of dir is full, then gives
// back leave bytes; it returns the file.
func fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, 4096)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	if err := f.Truncate(max(n-leave, 0)); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStateDirFull: with state_dir on a filesystem that runs out during
// the start (full, or a little room left so that a later step hits the
// wall), RunPodSandbox fails with an error naming ENOSPC and the step,
// everything is rolled back, and once space is freed the next start
// works.
func TestStateDirFull(t *testing.T) {
	dir := smallStateDir(t, "8m")
	f := newFixture(t, func(c *config.Config) { c.StateDir = dir })
	for _, leave := range []int64{0, 8 << 10, 16 << 10, 32 << 10, 64 << 10} {
		t.Run(fmt.Sprintf("%d KiB free", leave>>10), func(t *testing.T) {
			filler := fill(t, dir, leave)
			cs := f.census()
			ctx, cancel := context.WithTimeout(f.ctx, callBound)
			defer cancel()
			start := time.Now()
			id, err := f.cl.RunPod(ctx, cri.PodConfig("full", filepath.Join(f.logs, "full")), harness.HandlerVeil)
			took := time.Since(start)
			outcome := ""
			if err == nil {
				outcome = "started (enough room)"
				if rerr := f.cl.RemovePod(ctx, id); rerr != nil {
					t.Fatal(rerr)
				}
			} else {
				t.Logf("RunPodSandbox: %v", err)
				if !strings.Contains(err.Error(), "no space left on device") {
					t.Errorf("the error does not say ENOSPC: %v", err)
				}
				outcome = "failed: " + stepOf(err)
			}
			cell := cs.clean(t)
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			cs = f.census()
			p := f.podOfTwo(t, "after-full")
			f.remove(t, p)
			record(t, row{
				Outcome: outcome + "; after freeing space a pod of two ran and was removed",
				Recover: ms(took),
				Census:  cell + "; after the retry: " + cs.clean(t),
			})
		})
	}
}

// stepOf is the first line of the part of a CRI error that the shim
// wrote (after "failed to create shim task: "), ids shortened: one table
// cell.
func stepOf(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "failed to create shim task: "); i >= 0 {
		s = s[i+len("failed to create shim task: "):]
	}
	s, _, _ = strings.Cut(s, "\n")
	return hexID.ReplaceAllString(s, "<id>")
}

var hexID = regexp.MustCompile(`[0-9a-f]{64}`)

// TestStaleSandboxDir: a crash left a sandbox directory with the id a
// new sandbox takes, its pid file naming a live process that is not a
// helper of it. The start cleans the directory or refuses clearly, and
// the unrelated process lives on.
func TestStaleSandboxDir(t *testing.T) {
	f := newFixture(t)
	cl := newCtrClient(t, f)
	cs := f.census()
	bystander := exec.Command("sleep", "100000")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bystander.Process.Kill(); _ = bystander.Wait() })
	id := "ctr-stale"
	d, err := statedir.New(f.stateDir, id)
	if err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, d.PidFile("qemu"), strconv.Itoa(bystander.Process.Pid)+"\n")
	harness.WriteFile(t, d.File("leftover"), "from a crashed shim\n")
	t.Cleanup(func() { _ = os.RemoveAll(d.Path()) })

	start := time.Now()
	out, err := cl.run("run", "--rm", "--runtime", ctrRuntime, ctrImage, id, "echo", "fresh")
	took := time.Since(start)
	outcome := ""
	switch {
	case err == nil && strings.TrimSpace(out) == "fresh":
		outcome = "stale directory cleaned; the container ran"
	case err != nil:
		if !strings.Contains(err.Error(), id) {
			t.Errorf("refusal does not name the sandbox: %v", err)
		}
		outcome = "refused: " + stepOf(err)
		t.Logf("refused: %v", err)
		_, _ = cl.run("containers", "delete", id)
	default:
		t.Fatalf("ctr run printed %q", out)
	}
	if err != nil {
		// containerd runs the shim's cleanup after a failed create, which
		// removes what a crashed sandbox left; else the refusal's advice,
		// `veil sandbox cleanup`, does.
		if _, serr := os.Stat(d.Path()); serr == nil {
			veil := filepath.Join(harness.OutputDir(), "bin", "veil")
			if out, err := exec.Command(veil, "--config", f.cfgPath, "sandbox", "cleanup", id).CombinedOutput(); err != nil {
				t.Fatalf("veil sandbox cleanup %s: %v: %s", id, err, out)
			}
			outcome += "; `veil sandbox cleanup` removed it"
		} else {
			outcome += "; containerd's cleanup of the failed create (shim delete) removed it"
		}
		out, err := cl.run("run", "--rm", "--runtime", ctrRuntime, ctrImage, id, "echo", "fresh")
		if err != nil || strings.TrimSpace(out) != "fresh" {
			t.Fatalf("run after veil sandbox cleanup: %v: %q", err, out)
		}
		outcome += "; the next run worked"
	}
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the process the stale pid file named was killed: %v", err)
	}
	if _, serr := os.Stat(d.File("leftover")); serr == nil {
		t.Error("the stale directory's files survived")
	}
	record(t, row{
		Outcome: outcome + "; the live process the stale pid file named was left alone",
		Recover: ms(took),
		Census:  cs.clean(t),
	})
}
