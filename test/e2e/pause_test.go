package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// counterPeriod is how often the paused container prints a line.
const counterPeriod = 100 * time.Millisecond

// resumedExecBound bounds an exec right after a resume: far above its
// usual second under TCG, far below the agent request timeout a lost
// connection would wait out.
const resumedExecBound = 20 * time.Second

// TestPause: `ctr task pause` freezes a running container (ctr task ls
// shows PAUSED and its output stops) while its guest still answers, an
// exec into it fails cleanly, `ctr task resume` makes it RUNNING again
// with its output growing and execs working, and SIGKILL plus delete
// leave nothing behind. Once per hypervisor, as TestCtr.
func TestPause(t *testing.T) {
	for _, hv := range []string{config.HypervisorQEMU, config.HypervisorCloudHypervisor} {
		t.Run(hv, func(t *testing.T) {
			e := setup(t, hv)
			const id = "e2e-pause"
			t.Cleanup(func() { forceRemove(t, e, id) })
			testPause(t, e, id)
			checkNoLeftovers(t, e.stateDir, id)
		})
	}
}

// lineBuffer collects a process's output and counts its lines.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lineBuffer) lines() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Count(b.buf.Bytes(), []byte("\n"))
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitLines waits (bounded) until out has more than n lines.
func waitLines(t *testing.T, out *lineBuffer, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(cmdTimeout)
	for out.lines() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: output stayed at %d lines\n%s", what, out.lines(), out)
		}
		time.Sleep(counterPeriod) // polling a stream that has no event to wait on
	}
}

func testPause(t *testing.T, e *env, id string) {
	mustCtr(t, e.c, runArgs([]string{"-d"}, id, "sh", "-c", `i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done`)...)
	waitRunning(t, e, id)

	// The counter's output, through the FIFOs ctr run -d left; attach
	// ends when the task does.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	attach := e.c.Ctr(ctx, "task", "attach", id)
	var out, stderr lineBuffer
	attach.Stdout, attach.Stderr = &out, &stderr
	if err := attach.Start(); err != nil {
		t.Fatalf("ctr task attach: %v", err)
	}
	attached := make(chan error, 1)
	go func() { attached <- attach.Wait() }()
	waitLines(t, &out, 3, "before pause")

	mustCtr(t, e.c, "task", "pause", id)
	if st := taskStatus(t, e, id); st != "PAUSED" {
		t.Fatalf("after ctr task pause, ctr task ls says %s", st)
	}
	// While the container is frozen nothing is printed. The controlled event is
	// the host seeing the task PAUSED for 15 counter periods, each poll a
	// ctr round trip; a running counter prints about 15 lines meanwhile.
	// Output written before the freeze may still be in flight: one line
	// of slack.
	before := out.lines()
	for end := time.Now().Add(15 * counterPeriod); time.Now().Before(end); {
		if st := taskStatus(t, e, id); st != "PAUSED" {
			t.Fatalf("paused task became %s", st)
		}
	}
	if after := out.lines(); after > before+1 {
		t.Fatalf("output grew from %d to %d lines while paused\n%s", before, after, out.String())
	}
	// Exec into a paused task fails cleanly, as with runc.
	if r := ctr(t, e.c, nil, "task", "exec", "--exec-id", "paused-exec", id, "true"); r.code == 0 || !strings.Contains(r.stderr, "paused") {
		t.Fatalf("exec into a paused task: %s", r)
	}

	// The guest still answers while a container is paused: a new
	// connection to the agent, as `veil monitor` makes at every scrape,
	// is accepted. (When pause stopped the whole VM, such a connection
	// left the vsock device wedged after the resume.)
	agentAnswers(t, e, id)

	mustCtr(t, e.c, "task", "resume", id)
	if st := taskStatus(t, e, id); st != "RUNNING" {
		t.Fatalf("after ctr task resume, ctr task ls says %s", st)
	}
	waitLines(t, &out, out.lines()+3, "after resume")

	// New agent connections work right after a resume: an exec needs
	// fresh vsock streams, and the first host-initiated connection after
	// QMP cont used to wait for unrelated guest traffic (up to the agent
	// request timeout). Three rounds, since it did not hang every time.
	for i := range 3 {
		if i > 0 {
			mustCtr(t, e.c, "task", "pause", id)
			mustCtr(t, e.c, "task", "resume", id)
		}
		r := ctrWithin(t, e.c, resumedExecBound, "task", "exec", "--exec-id", fmt.Sprintf("resumed-%d", i), id, "echo", "resumed")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "resumed" {
			t.Fatalf("exec %d right after resume: %s", i, r)
		}
	}

	// SIGKILL of a paused task works (the shim resumes it first).
	mustCtr(t, e.c, "task", "pause", id)
	mustCtr(t, e.c, "task", "kill", "-s", "SIGKILL", id)
	select {
	case <-attached:
	case <-ctx.Done():
		t.Fatalf("ctr task attach did not end after SIGKILL\n%s", stderr.String())
	}
	deleteContainer(t, e, id)
}

// agentAnswers connects to the sandbox's agent through its hybrid vsock
// socket and fails unless the guest accepts within resumedExecBound.
func agentAnswers(t *testing.T, e *env, sandboxID string) {
	t.Helper()
	c, err := net.Dial("unix", filepath.Join(e.stateDir, sandboxID, statedir.VsockSocket))
	if err != nil {
		t.Fatalf("dial the vsock socket: %v", err)
	}
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(resumedExecBound)); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "CONNECT %d\n", api.AgentPort); err != nil {
		t.Fatalf("CONNECT: %v", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OK ") {
		t.Fatalf("agent connection while a container is paused: %q, %v", line, err)
	}
}
