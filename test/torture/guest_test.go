package torture

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/harness"
)

// guestExec runs script with sh as root in p's guest, outside every
// container (the agent's debug exec through `veil sandbox exec`), bounded
// by d; it returns the output and the error (a fault case expects one).
func (f *fixture) guestExec(p *pod, d time.Duration, script string) (string, error) {
	ctx, cancel := context.WithTimeout(f.ctx, d)
	defer cancel()
	veil := filepath.Join(harness.OutputDir(), "bin", "veil")
	out, err := exec.CommandContext(ctx, veil, "--config", f.cfgPath, "sandbox", "exec", "--timeout", d.String(), p.id, "--", "sh", "-c", script).CombinedOutput()
	return string(out), err
}

// TestGuestDies ends the guest from inside: the agent (PID 1) killed by
// SIGABRT, and a kernel panic (panic_on_oom with the guest's memory
// filled outside any container). The CRI sees both containers exit within
// exitBound, stopp and rmp complete, and nothing is left.
func TestGuestDies(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, script string
	}{
		// PID 1 supervises the agent server; either dying ends the guest.
		{"agent PID 1 SIGABRT", "kill -ABRT 1"},
		{"agent server SIGKILL", `for d in /proc/[0-9]*; do set -- $(cat $d/stat); [ "$4" = 1 ] && grep -q 's[e]rve' $d/cmdline && kill -KILL ${d#/proc/}; done`},
		// A tmpfs as large as the guest's memory, filled: the OOM killer
		// runs and panic_on_oom panics the kernel.
		{"kernel panic", "echo 1 > /proc/sys/vm/panic_on_oom && mkdir -p /run/fill && mount -t tmpfs -o size=100% fill /run/fill && dd if=/dev/zero of=/run/fill/x bs=1M"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := f.census()
			p := f.podOfTwo(t, "guest-dies")
			cs.sample()
			start := time.Now()
			// The exec may answer before the guest is gone, or not at all.
			out, err := f.guestExec(p, time.Minute, tc.script)
			t.Logf("%s: %v: %s", tc.script, err, out)
			took, sts := f.waitAllExited(t, p, exitBound)
			rm := f.remove(t, p)
			record(t, row{
				Outcome: exits(sts) + "; stopp+rmp " + ms(rm),
				Recover: ms(time.Since(start)-took) + " exec, then " + ms(took),
				Census:  cs.clean(t),
			})
		})
	}
}
