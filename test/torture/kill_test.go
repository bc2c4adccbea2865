package torture

import (
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// helpers are the processes a sandbox runs on the host, by pid-file name
// (see fixture.helperPid).
var helpers = []struct{ name, pidName string }{
	{"qemu", "qemu"},
	{"virtiofsd", "virtiofsd"},
	{"vsock daemon", "vhost-vsock"},
	{"shim", "shim"},
}

// TestKillHelperCRI kills each helper of a running pod of two containers
// with SIGKILL, one per case: the CRI sees both containers exit within
// exitBound, stopp and rmp complete, and the leak census is clean.
func TestKillHelperCRI(t *testing.T) {
	f := newFixture(t)
	for _, h := range helpers {
		t.Run(h.name, func(t *testing.T) {
			cs := f.census()
			p := f.podOfTwo(t, "kill-"+h.pidName)
			cs.sample()
			pid := f.helperPid(t, p, h.pidName)
			kill9(t, pid)
			took, sts := f.waitAllExited(t, p, exitBound)
			rm := f.remove(t, p)
			record(t, row{
				Outcome: exits(sts) + "; stopp+rmp " + ms(rm),
				Recover: ms(took),
				Census:  cs.clean(t),
			})
		})
	}
}

// TestKillHelperCtr is TestKillHelperCRI through ctr: a pod of two tasks
// (the second joins the first's sandbox by annotation), then `ctr task
// delete` and `ctr containers delete`.
func TestKillHelperCtr(t *testing.T) {
	f := newFixture(t)
	cl := newCtrClient(t, f)
	for _, h := range helpers {
		t.Run(h.name, func(t *testing.T) {
			cs := f.census()
			id := "ctr-kill-" + h.pidName
			ids := cl.podOfTwo(t, id)
			cs.sample()
			var pid int
			if h.pidName == "shim" {
				pid = integration.ShimPid(id)
			} else {
				pid = f.helperPid(t, &pod{id: id}, h.pidName)
			}
			start := time.Now()
			kill9(t, pid)
			states := cl.waitStopped(t, ids, exitBound)
			took := time.Since(start)
			rm := time.Now()
			cl.delete(t, ids...)
			record(t, row{
				Outcome: states + "; task+container delete " + ms(time.Since(rm)),
				Recover: ms(took),
				Census:  cs.cleanExcept(t, "ctr", ctrFIFOs(h.pidName == "shim")),
			})
			if err := harness.RemoveCtrFIFOs(id); err != nil {
				t.Error(err)
			}
		})
	}
}

// ctrFIFOs tolerates the stdio FIFOs ctr made for tasks that a dead shim
// took with it: containerd drops a dead shim's tasks from its list once
// the shim's cleanup ran (core/runtime/v2: "Remove self from the runtime
// task list"), and ctr removes its FIFOs only when it deletes a task that
// is still listed. They are the client's, outside any runtime's reach.
func ctrFIFOs(shimDied bool) func(string) bool {
	return func(item string) bool {
		return shimDied && strings.HasPrefix(item, harness.KindFIFO+": /run/containerd/fifo/")
	}
}
