package ch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// harness runs the driver against the fake VMM (fakevmm_test.go).
type harness struct {
	// dir is the sandbox directory (short: it holds Unix sockets).
	dir string
	// plan is the fake's plan, written at planPath.
	plan     fakePlan
	planPath string
	// record is the fake's record file.
	record string
	// driver launches the fake through a wrapper script.
	driver *Driver
}

// newHarness prepares a sandbox directory and a "cloud-hypervisor" that
// is this test binary running the fake VMM with plan.
func newHarness(t *testing.T, plan fakePlan) *harness {
	t.Helper()
	specPath, err := filepath.Abs(filepath.FromSlash(specRelPath))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir paths embed the test name and can exceed the 108-byte
	// limit of a Unix socket path.
	dir, err := os.MkdirTemp("", "veil-ch-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, statedir.HelperDir), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Should a test fail with the VMM still running, kill it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := proc.KillFromPidFile(ctx, filepath.Join(dir, processName+".pid"), dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		_ = os.RemoveAll(dir)
	})
	tools := t.TempDir()
	plan.Spec = specPath
	plan.Record = filepath.Join(tools, "calls.jsonl")
	planPath := filepath.Join(tools, "plan.json")
	if err := os.WriteFile(planPath, mustMarshal(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(tools, "cloud-hypervisor")
	content := fmt.Sprintf("#!/bin/sh\n%s='%s' exec '%s' \"$@\"\n", fakePlanEnv, planPath, exe)
	if err := os.WriteFile(script, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return &harness{
		dir:      dir,
		plan:     plan,
		planPath: planPath,
		record:   plan.Record,
		driver:   &Driver{Path: script, APITimeout: 2 * time.Second, ReadyTimeout: 5 * time.Second, BootTimeout: 2 * time.Second, StopTimeout: 2 * time.Second},
	}
}

// config is the VMConfig the tests start.
func (h *harness) config() hypervisor.VMConfig {
	return hypervisor.VMConfig{
		ID:          "sb1",
		Dir:         h.dir,
		Kernel:      "/veil/vmlinux",
		Initrd:      "/veil/initramfs.cpio",
		Cmdline:     "console=ttyS0 quiet panic=-1",
		VCPUs:       2,
		MemoryMiB:   256,
		VsockSocket: filepath.Join(h.dir, statedir.VsockSocket),
		Filesystems: []hypervisor.Filesystem{{Tag: "veil", Socket: filepath.Join(h.dir, "virtiofsd.sock")}},
	}
}

// start starts a VM that the test's cleanup stops.
func (h *harness) start(t *testing.T) hypervisor.VM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := h.driver.Start(ctx, h.config())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { stopVM(t, v) })
	return v
}

func stopVM(t *testing.T, v hypervisor.VM) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := v.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// records reads the fake's record file and fails the test on any request
// (or fake answer) that broke the spec.
func (h *harness) records(t *testing.T) []fakeRecord {
	t.Helper()
	b, err := os.ReadFile(h.record)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []fakeRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r fakeRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("record %q: %v", sc.Text(), err)
		}
		if r.Invalid != "" {
			t.Errorf("%s %s broke the spec: %s", r.Method, r.Endpoint, r.Invalid)
		}
		out = append(out, r)
	}
	return out
}

// calls is the requests the fake received, in order.
func (h *harness) calls(t *testing.T) []fakeRecord {
	t.Helper()
	var out []fakeRecord
	for _, r := range h.records(t) {
		if r.Event == "call" {
			out = append(out, r)
		}
	}
	return out
}

// startRecord is the fake's start event.
func (h *harness) startRecord(t *testing.T) fakeRecord {
	t.Helper()
	for _, r := range h.records(t) {
		if r.Event == "start" {
			return r
		}
	}
	t.Fatal("the fake VMM never started")
	return fakeRecord{}
}

// sequence lists the endpoints called, polling endpoints (vmm.ping,
// vm.info) collapsed when repeated back to back and dropped after
// vmm.shutdown.
func sequence(calls []fakeRecord) []string {
	var out []string
	shutdown := false
	for _, c := range calls {
		poll := c.Endpoint == "vmm.ping" || c.Endpoint == "vm.info"
		// A poll the driver gave up on at its deadline can reach the
		// fake after the vmm.shutdown the driver sent next (the fake
		// serves each connection on its own goroutine): it is not a
		// call made after shutdown.
		if shutdown && poll {
			continue
		}
		shutdown = shutdown || c.Endpoint == "vmm.shutdown"
		if n := len(out); poll && n > 0 && out[n-1] == c.Endpoint {
			continue
		}
		out = append(out, c.Endpoint)
	}
	return out
}

func count(calls []fakeRecord, endpoint string) int {
	n := 0
	for _, c := range calls {
		if c.Endpoint == endpoint {
			n++
		}
	}
	return n
}

// assertSequence compares the collapsed endpoint sequence.
func assertSequence(t *testing.T, calls []fakeRecord, want []string) {
	t.Helper()
	if got := sequence(calls); !reflect.DeepEqual(got, want) {
		t.Errorf("calls = %v\nwant    %v", got, want)
	}
}

// assertJSON compares a request body with the expected JSON, ignoring
// formatting and key order.
func assertJSON(t *testing.T, what, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad expectation: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s body = %s\nwant %s", what, got, want)
	}
}

// assertErr checks that err contains every string of want (nil want: no
// error).
func assertErr(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

// assertGone checks that the VMM with pid (0: unknown) is gone and its
// files removed.
func (h *harness) assertGone(t *testing.T, pid int) {
	t.Helper()
	if pid > 0 {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("VMM pid %d still exists (kill 0: %v)", pid, err)
		}
	}
	for _, name := range []string{processName + ".pid", apiSocketName, statedir.VsockSocket} {
		if _, err := os.Stat(filepath.Join(h.dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (stat: %v)", name, err)
		}
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// setFaults replaces the running fake's faults; its next request sees
// them (the fake re-reads the plan on every request).
func (h *harness) setFaults(t *testing.T, faults map[string]fault) {
	t.Helper()
	h.plan.Faults = faults
	tmp := h.planPath + ".tmp"
	if err := os.WriteFile(tmp, mustMarshal(h.plan), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.planPath); err != nil {
		t.Fatal(err)
	}
}
