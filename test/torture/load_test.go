package torture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// percentile is the p-th percentile (0-100) of ds, nearest rank.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

func spread(ds []time.Duration) string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s (n=%d)", ms(percentile(ds, 50)), ms(percentile(ds, 99)), ms(slices.Max(ds)), len(ds))
}

// TestLoadCycles runs pods one after the other: run, a container that
// prints, its exit, stop and remove; the host is clean after each.
func TestLoadCycles(t *testing.T) {
	n := load().Cycles
	f := newFixture(t)
	cs := f.census()
	var cycles []time.Duration
	for i := range n {
		start := time.Now()
		p := f.runPod(t, fmt.Sprintf("cycle-%d", i))
		f.start(t, p, "echo", fmt.Sprintf("echo cycle %d", i))
		if i == 0 {
			cs.sample()
		}
		_, sts := f.waitAllExited(t, p, callBound)
		if sts[0].GetExitCode() != 0 {
			t.Fatalf("cycle %d: exit %d", i, sts[0].GetExitCode())
		}
		f.remove(t, p)
		cycles = append(cycles, time.Since(start))
		if leaks := f.c.Census().Since(cs.base); len(leaks) > 0 && i < n-1 {
			// The next cycles' census would hide nothing: fail now.
			cs.clean(t)
		}
	}
	record(t, row{
		Outcome: fmt.Sprintf("%d run/exit/remove cycles: %s", n, spread(cycles)),
		Recover: "-",
		Census:  cs.clean(t),
	})
}

// TestLoadParallelPods starts pods at once, each with a container,
// reports the start times, and removes them at once.
func TestLoadParallelPods(t *testing.T) {
	n := load().Parallel
	f := newFixture(t)
	cs := f.census()
	pods := make([]*pod, n)
	starts := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			cfg := podConfig(f, fmt.Sprintf("par-%d", i))
			ctx, cancel := context.WithTimeout(f.ctx, callBound)
			defer cancel()
			id, err := f.cl.RunPod(ctx, cfg, harness.HandlerVeil)
			if err != nil {
				errs[i] = err
				return
			}
			pods[i] = &pod{id: id, cfg: cfg}
			cid, err := f.cl.StartContainer(ctx, id, cfg, shell("a", "exec sleep 100000"))
			if err != nil {
				errs[i] = err
				return
			}
			pods[i].ctrs = []string{cid}
			starts[i] = time.Since(start)
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, p := range pods {
			if p != nil {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), callBound)
				_ = f.cl.RemovePod(ctx, p.id)
				cancel()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pod %d of %d: %v", i, n, err)
		}
	}
	cs.sample()
	rms := make([]time.Duration, n)
	for i, p := range pods {
		wg.Go(func() {
			start := time.Now()
			ctx, cancel := context.WithTimeout(f.ctx, callBound)
			defer cancel()
			errs[i] = f.cl.RemovePod(ctx, p.id)
			rms[i] = time.Since(start)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	record(t, row{
		Outcome: fmt.Sprintf("%d pods started at once, RunPodSandbox+container running: %s; removed at once: %s", n, spread(starts), spread(rms)),
		Recover: "-",
		Census:  cs.clean(t),
	})
}

// TestLoadExec runs ExecSyncs on one pod, one after the other and many
// at once; every output is right, and afterwards the shim's file
// descriptors and goroutines and the agent's exec records are back to
// where they were.
func TestLoadExec(t *testing.T) {
	n := load()
	f := newFixture(t)
	cs := f.census()
	p := f.runPod(t, "exec-load")
	cid := f.start(t, p, "a", "exec sleep 100000")
	shim := integration.ShimPid(p.id)
	f.mustExec(t, cid, "true") // warm: the first exec sets up what stays
	base := f.shimFootprint(t, shim, p)
	cs.sample()

	var seq []time.Duration
	for i := range n.ExecSeq {
		start := time.Now()
		if out := f.mustExec(t, cid, "echo", strconv.Itoa(i)); strings.TrimSpace(out) != strconv.Itoa(i) {
			t.Fatalf("exec %d printed %q", i, out)
		}
		seq = append(seq, time.Since(start))
	}
	afterSeq := f.settle(t, shim, p, base)

	par := make([]time.Duration, n.ExecPar)
	errs := make([]error, n.ExecPar)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n.ExecPar {
		wg.Go(func() {
			s := time.Now()
			ctx, cancel := context.WithTimeout(f.ctx, callBound)
			defer cancel()
			resp, err := f.cl.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: cid, Cmd: []string{"echo", strconv.Itoa(i)}, Timeout: 60})
			switch {
			case err != nil:
				errs[i] = err
			case resp.ExitCode != 0 || strings.TrimSpace(string(resp.Stdout)) != strconv.Itoa(i):
				errs[i] = fmt.Errorf("exec %d: exit %d, stdout %q", i, resp.ExitCode, resp.Stdout)
			}
			par[i] = time.Since(s)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	afterPar := f.settle(t, shim, p, base)
	f.remove(t, p)
	record(t, row{
		Outcome: fmt.Sprintf("%d sequential ExecSyncs: %s; %d at once in %s: %s; shim before %s, after sequential %s, after parallel %s",
			n.ExecSeq, spread(seq), n.ExecPar, ms(wall), spread(par), base, afterSeq, afterPar),
		Recover: "-",
		Census:  cs.clean(t),
	})
}

// TestLoadStdout has a client read a large stdout slowly (ctr run, its
// output read at a bounded rate): the bytes arrive intact (SHA-256) and
// the shim's RSS stays under 64 MiB; its descriptors and goroutines are
// back to where they were after the container exits.
func TestLoadStdout(t *testing.T) {
	size := load().StdoutBytes
	const rate = 32 << 20 // bytes per second the client reads
	const rssBound = 64 << 20
	f := newFixture(t)
	cl := newCtrClient(t, f)
	cs := f.census()
	id := "stdout-load"
	line := "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?"
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Minute)
	defer cancel()
	cmd := f.c.Ctr(ctx, "-n", ctrNamespace, "run", "--rm", "--runtime", ctrRuntime, ctrImage, id,
		"sh", "-c", fmt.Sprintf("yes %s | head -c %d", line, size))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cl.run("task", "delete", "--force", id)
		_, _ = cl.run("containers", "delete", id)
	})
	// The expected stream: `yes line | head -c size`.
	want := sha256.New()
	unit := []byte(line + "\n")
	for left := size; left > 0; {
		k := min(int64(len(unit)), left)
		want.Write(unit[:k])
		left -= k
	}
	got := sha256.New()
	var maxRSS int64
	var shim int
	buf := make([]byte, 256<<10)
	var n int64
	begin := time.Now()
	for {
		k, err := stdout.Read(buf)
		got.Write(buf[:k])
		n += int64(k)
		if shim == 0 {
			shim = integration.ShimPid(id)
		}
		if shim != 0 {
			maxRSS = max(maxRSS, rssOf(shim))
			if cs.peak == nil {
				cs.sample()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		// A slow client: no faster than rate.
		if ahead := time.Duration(float64(n)/rate*float64(time.Second)) - time.Since(begin); ahead > 0 {
			time.Sleep(ahead) // throttling the reader, not waiting for an event
		}
	}
	took := time.Since(begin)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ctr run: %v: %s", err, stderr.String())
	}
	if n != size {
		t.Fatalf("read %d bytes, want %d", n, size)
	}
	if hex.EncodeToString(got.Sum(nil)) != hex.EncodeToString(want.Sum(nil)) {
		t.Fatal("stdout differs from what the container wrote (SHA-256)")
	}
	if shim == 0 {
		t.Fatal("never saw the shim")
	}
	if maxRSS > rssBound {
		t.Errorf("shim RSS reached %d MiB, want under %d MiB", maxRSS>>20, rssBound>>20)
	}
	record(t, row{
		Outcome: fmt.Sprintf("%d MiB read at ≤%d MiB/s in %s, SHA-256 matches; shim max RSS %d MiB (bound %d)", size>>20, rate>>20, ms(took), maxRSS>>20, rssBound>>20),
		Recover: "-",
		Census:  cs.clean(t),
	})
}

// rssOf is a process's resident set in bytes (0 once it is gone).
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// footprint is what a shim holds: descriptors, goroutines, and the
// agent's exec records for its pod.
type footprint struct{ fds, goroutines, execs int }

func (fp footprint) String() string {
	return fmt.Sprintf("%d fds/%d goroutines/%d guest exec records", fp.fds, fp.goroutines, fp.execs)
}

// shimFootprint counts the shim's descriptors (/proc), its goroutines
// (SIGUSR1 makes a containerd shim log a stack dump, which reaches the
// containerd log) and the agent's exec records (veil sandbox metrics).
func (f *fixture) shimFootprint(t testing.TB, pid int, p *pod) footprint {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return footprint{fds: len(fds), goroutines: f.goroutines(t, pid), execs: f.execRecords(t, p)}
}

var goroutineHeader = regexp.MustCompile(`goroutine \d+ \[`)

const dumpEnd = "=== END goroutine stack dump ==="

func (f *fixture) goroutines(t testing.TB, pid int) int {
	t.Helper()
	read := func() string {
		b, err := os.ReadFile(f.c.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := strings.Count(read(), dumpEnd)
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatalf("SIGUSR1 to shim %d: %v", pid, err)
	}
	var log string
	integration.Eventually(t, "the shim's stack dump in the containerd log", 30*time.Second, func() error {
		log = read()
		if strings.Count(log, dumpEnd) <= before {
			return fmt.Errorf("no new dump")
		}
		return nil
	})
	end := strings.LastIndex(log, dumpEnd)
	begin := strings.LastIndex(log[:end], "=== BEGIN goroutine stack dump ===")
	return len(goroutineHeader.FindAllString(log[begin:end], -1))
}

// execRecords sums the agent's exec records over the pod's containers.
func (f *fixture) execRecords(t testing.TB, p *pod) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	veil := filepath.Join(harness.OutputDir(), "bin", "veil")
	out, err := exec.CommandContext(ctx, veil, "--config", f.cfgPath, "sandbox", "metrics", "--json", p.id).Output()
	if err != nil {
		t.Fatalf("veil sandbox metrics %s: %v", p.id, err)
	}
	var m struct {
		Guest struct {
			Containers []struct {
				ExecRecords int `json:"exec_records"`
			} `json:"containers"`
		}
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("veil sandbox metrics --json: %v: %s", err, out)
	}
	n := 0
	for _, c := range m.Guest.Containers {
		n += c.ExecRecords
	}
	return n
}

// settle waits until the shim's footprint is back to base (goroutines
// and descriptors may lag the last exec's teardown a little) and fails t
// if it does not come back.
func (f *fixture) settle(t testing.TB, pid int, p *pod, base footprint) footprint {
	t.Helper()
	var fp footprint
	deadline := time.Now().Add(15 * time.Second)
	for {
		fp = f.shimFootprint(t, pid, p)
		if fp.fds <= base.fds && fp.goroutines <= base.goroutines && fp.execs <= base.execs {
			return fp
		}
		if time.Now().After(deadline) {
			t.Errorf("shim not back to its baseline: %s, was %s", fp, base)
			return fp
		}
		time.Sleep(200 * time.Millisecond) // polling: teardown ends without an event
	}
}
