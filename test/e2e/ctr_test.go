package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/harness"
)

const (
	runtimeName = "io.containerd.veil.v2"
	imageRef    = "localhost/veil/busybox:e2e"
	// cmdTimeout bounds one ctr call that boots a VM (TCG: ~2 s per boot).
	cmdTimeout = 90 * time.Second
)

// result is what one ctr call produced.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout: " + r.stdout + "\nstderr: " + r.stderr
}

// ctr runs one ctr command bounded by cmdTimeout, with stdin from in.
func ctr(t *testing.T, c *harness.Containerd, in io.Reader, args ...string) result {
	t.Helper()
	return ctrBounded(t, c, in, cmdTimeout, args...)
}

// ctrWithin runs ctr as mustCtr's ctr does, but fails the test unless ctr
// ends within bound.
func ctrWithin(t *testing.T, c *harness.Containerd, bound time.Duration, args ...string) result {
	t.Helper()
	return ctrBounded(t, c, nil, bound, args...)
}

func ctrBounded(t *testing.T, c *harness.Containerd, in io.Reader, bound time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := c.Ctr(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = in
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("ctr %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("ctr %s: timed out after %v\n%s", strings.Join(args, " "), bound, r)
	}
	return r
}

// mustCtr runs ctr and fails the test unless it exits 0.
func mustCtr(t *testing.T, c *harness.Containerd, args ...string) result {
	t.Helper()
	r := ctr(t, c, nil, args...)
	if r.code != 0 {
		t.Fatalf("ctr %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// runArgs is `ctr run` with the Veil runtime.
func runArgs(flags []string, id string, argv ...string) []string {
	args := append([]string{"run", "--runtime", runtimeName}, flags...)
	args = append(args, imageRef, id)
	return append(args, argv...)
}
