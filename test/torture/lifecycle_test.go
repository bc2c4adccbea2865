package torture

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/cri"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// TestRemoveDeadPodTwice: a pod whose VM died is stopped and removed,
// and removed again; both removals succeed and nothing is left.
func TestRemoveDeadPodTwice(t *testing.T) {
	f := newFixture(t)
	cs := f.census()
	p := f.podOfTwo(t, "dead-twice")
	cs.sample()
	kill9(t, f.helperPid(t, p, "qemu"))
	took, sts := f.waitAllExited(t, p, exitBound)
	ctx, cancel := context.WithTimeout(f.ctx, callBound)
	defer cancel()
	start := time.Now()
	if _, err := f.cl.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Logf("rmp before stopp: %v", err) // CRI may want it stopped first
	}
	for i := 0; i < 2; i++ {
		if err := f.cl.RemovePod(ctx, p.id); err != nil {
			t.Fatalf("removal %d: %v", i+1, err)
		}
	}
	record(t, row{
		Outcome: exits(sts) + "; rmp, stopp+rmp, stopp+rmp all succeed in " + ms(time.Since(start)),
		Recover: ms(took),
		Census:  cs.clean(t),
	})
}

// TestRunPodCancelled: the client gives up on RunPodSandbox while the VM
// boots; no VM, helper or state survives.
func TestRunPodCancelled(t *testing.T) {
	f := newFixture(t)
	cs := f.census()
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := f.cl.RunPod(ctx, cri.PodConfig("cancelled", filepath.Join(f.logs, "cancelled")), harness.HandlerVeil)
		done <- err
	}()
	// Cancel once a VMM of the pod runs (its pid file is written when it
	// started): mid-boot, before the agent answers.
	booting := func() error {
		m, _ := filepath.Glob(filepath.Join(f.stateDir, "*", statedir.HelperPidFile("", "qemu")))
		if len(m) == 0 {
			return errors.New("no VMM yet")
		}
		return nil
	}
	deadline := time.Now().Add(callBound)
	for booting() != nil {
		select {
		case err := <-done:
			t.Fatalf("RunPodSandbox ended before the VM started: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no VMM started")
		}
		time.Sleep(5 * time.Millisecond) // polling the host for the VMM's pid file
	}
	cs.sample()
	start := time.Now()
	cancel()
	err := <-done
	if err == nil {
		t.Log("RunPodSandbox finished before the cancel reached it; removing the pod")
	}
	t.Logf("RunPodSandbox after cancel: %v", err)
	cell := cs.clean(t)
	// CRI rolls back a cancelled RunPodSandbox: it lists no pod.
	lctx, lcancel := context.WithTimeout(f.ctx, time.Minute)
	defer lcancel()
	resp, lerr := f.cl.Runtime.ListPodSandbox(lctx, &runtimeapi.ListPodSandboxRequest{})
	if lerr != nil {
		t.Fatal(lerr)
	}
	for _, s := range resp.Items {
		t.Errorf("pod %s (%s) listed after a cancelled RunPodSandbox", s.Id, s.State)
	}
	record(t, row{
		Outcome: "cancelled mid-boot: " + firstLine(err),
		Recover: ms(time.Since(start)) + " to a clean host",
		Census:  cell,
	})
}

func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// TestContainerdRestart kills containerd (SIGKILL) under two running
// pods and starts it again: the tasks still run, exec, logs, events and
// stop work, and removal leaves nothing.
func TestContainerdRestart(t *testing.T) {
	f := newFixture(t)
	cs := f.census()
	var pods []*pod
	for _, name := range []string{"restart-1", "restart-2"} {
		p := f.runPod(t, name)
		f.start(t, p, "a", "exec sleep 100000")
		f.start(t, p, "ticker", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done")
		pods = append(pods, p)
	}
	cs.sample()
	f.c.Crash()
	start := time.Now()
	sctx, scancel := context.WithTimeout(f.ctx, callBound)
	defer scancel()
	if err := f.c.Restart(sctx); err != nil {
		t.Fatal(err)
	}
	// The CRI plugin answers "not initialized yet" while it recovers its
	// state after the restart.
	integration.Eventually(t, "CRI serving again", callBound, func() error {
		ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
		defer cancel()
		_, err := f.cl.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		return err
	})
	restarted := time.Since(start)
	for _, p := range pods {
		for _, id := range p.ctrs {
			if st := f.status(t, id); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Fatalf("container %s is %s after the restart", id, st.GetState())
			}
		}
		if out := f.mustExec(t, p.ctrs[0], "echo", "after-restart"); strings.TrimSpace(out) != "after-restart" {
			t.Fatalf("exec after the restart: %q", out)
		}
		// The ticker keeps logging through the restarted containerd.
		logPath := cri.LogPath(p.cfg, cri.Container("ticker", "", ""))
		n := ticks(t, logPath)
		integration.Eventually(t, "new log lines after the restart", 30*time.Second, func() error {
			if m := ticks(t, logPath); m <= n {
				return errors.New("no new tick")
			}
			return nil
		})
		// Events: a stop reaches the restarted containerd as an exit.
		ctx, cancel := context.WithTimeout(f.ctx, callBound)
		_, err := f.cl.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: p.ctrs[1], Timeout: 1})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if st := f.status(t, p.ctrs[1]); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Fatalf("stopped container is %s", st.GetState())
		}
	}
	var rm time.Duration
	for _, p := range pods {
		rm += f.remove(t, p)
	}
	record(t, row{
		Outcome: "tasks running, exec, logs, stop (exit event) work after the restart; 2 pods stopp+rmp " + ms(rm),
		Recover: ms(restarted) + " to CRI serving again",
		Census:  cs.clean(t),
	})
}

// ticks counts the ticker's lines in a CRI log.
func ticks(t testing.TB, path string) int {
	t.Helper()
	l, err := cri.ReadLog(path)
	if err != nil && !os.IsNotExist(errors.Unwrap(err)) {
		t.Fatal(err)
	}
	return strings.Count(l, "tick ")
}

// status is a container's CRI status.
func (f *fixture) status(t testing.TB, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	resp, err := f.cl.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.GetStatus()
}

// mustExec runs cmd in a container (ExecSync) and returns its stdout.
func (f *fixture) mustExec(t testing.TB, id string, cmd ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	resp, err := f.cl.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
	if err != nil {
		t.Fatalf("ExecSync %v in %s: %v", cmd, id, err)
	}
	if resp.ExitCode != 0 {
		t.Fatalf("%v exited %d: %s", cmd, resp.ExitCode, resp.Stderr)
	}
	return string(resp.Stdout)
}
