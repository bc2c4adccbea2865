package torture

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/image"
)

const (
	ctrNamespace = "torture"
	ctrRuntime   = "io.containerd.veil.v2"
	ctrImage     = "localhost/veil/busybox:torture"
	// sandboxAnnotation makes a container join another's sandbox.
	sandboxAnnotation = "io.kubernetes.cri.sandbox-id"
)

// ctrClient drives the fixture's containerd with ctr in its own
// namespace.
type ctrClient struct{ f *fixture }

// newCtrClient imports the busybox image for ctr.
func newCtrClient(t testing.TB, f *fixture) *ctrClient {
	t.Helper()
	tar, err := image.BuildBusybox(t.TempDir(), ctrImage)
	if err != nil {
		t.Fatal(err)
	}
	c := &ctrClient{f: f}
	c.must(t, "images", "import", "--platform", "linux/amd64", tar)
	return c
}

// run runs one ctr command, bounded by callBound.
func (c *ctrClient) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(c.f.ctx, callBound)
	defer cancel()
	cmd := c.f.c.Ctr(ctx, append([]string{"-n", ctrNamespace}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

func (c *ctrClient) must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// podOfTwo runs id (a sandbox of its own) and id-b joining it, both
// sleeping; Cleanup force-deletes whatever is left.
func (c *ctrClient) podOfTwo(t testing.TB, id string) []string {
	t.Helper()
	member := id + "-b"
	t.Cleanup(func() {
		for _, x := range []string{member, id} {
			_, _ = c.run("task", "delete", "--force", x)
			_, _ = c.run("containers", "delete", x)
		}
	})
	c.must(t, "run", "-d", "--runtime", ctrRuntime, ctrImage, id, "sleep", "100000")
	c.must(t, "run", "-d", "--runtime", ctrRuntime, "--annotation", sandboxAnnotation+"="+id, ctrImage, member, "sleep", "100000")
	c.waitStatus(t, []string{id, member}, "RUNNING", callBound)
	return []string{id, member}
}

// tasks maps task id to the STATUS column of `ctr task ls`.
func (c *ctrClient) tasks(t testing.TB) map[string]string {
	t.Helper()
	out := c.must(t, "task", "ls")
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 3 {
			m[f[0]] = f[2]
		}
	}
	return m
}

// waitStatus waits until every task in ids has status want.
func (c *ctrClient) waitStatus(t testing.TB, ids []string, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := c.tasks(t)
		ok := true
		for _, id := range ids {
			ok = ok && m[id] == want
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks %v not all %s within %s: %v", ids, want, d, m)
		}
		time.Sleep(50 * time.Millisecond) // polling ctr: it has no wait for several tasks
	}
}

// waitStopped waits until every task of ids is STOPPED or gone (a dead
// shim's tasks are dropped) and describes what it saw.
func (c *ctrClient) waitStopped(t testing.TB, ids []string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := c.tasks(t)
		var states []string
		done := true
		for _, id := range ids {
			st := m[id]
			if st == "" {
				st = "gone"
			}
			done = done && (st == "STOPPED" || st == "gone")
			states = append(states, st)
		}
		if done {
			return "tasks " + strings.Join(states, ", ")
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks %v not stopped within %s: %v", ids, d, m)
		}
		time.Sleep(50 * time.Millisecond) // polling ctr: it has no wait for several tasks
	}
}

// delete deletes the tasks (a task already gone is fine) and containers.
func (c *ctrClient) delete(t testing.TB, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := c.run("task", "delete", id); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Error(err)
		}
		if _, err := c.run("containers", "delete", id); err != nil {
			t.Error(err)
		}
	}
}
