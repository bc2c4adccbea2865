package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/sys/reexec"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/hostcheck"
	"github.com/veil-runtime/veil/runtime/inspect"
)

// TestMain lets the test binary serve as the jail stage that `veil check`
// tries (TestCheckThisHost), as main does.
func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	os.Exit(m.Run())
}

// world is a fake host for the commands: a config file, a state dir with
// sandboxes, a /proc tree, a root for `veil check` and a fake agent.
type world struct {
	root, config, stateDir, procRoot string
	agent                            *fakeAgent
}

func newWorld(t *testing.T) *world {
	t.Helper()
	root := t.TempDir()
	w := &world{root: root, config: filepath.Join(root, "veil.toml"), stateDir: filepath.Join(root, "sb"), procRoot: filepath.Join(root, "proc"), agent: &fakeAgent{}}
	writeFile(t, w.config, fmt.Sprintf("state_dir = %q\n[hypervisor]\nname = \"qemu\"\n[guest]\nkernel = \"/k/vmlinux\"\ninitrd = \"/k/initrd\"\n", w.stateDir))
	return w
}

func (w *world) env() *env {
	return &env{
		host:     hostcheck.Host{Root: filepath.Join(w.root, "host"), Path: []string{"/bin"}},
		procRoot: w.procRoot,
		dial: func(_ context.Context, dir string) (inspect.Agent, error) {
			if _, err := os.Stat(filepath.Join(dir, "vsock.sock")); err != nil {
				return nil, fmt.Errorf("connect to the agent: %w", err)
			}
			return w.agent, nil
		},
	}
}

// sandbox creates a sandbox directory with a qemu (alive or not), a
// virtiofsd, containers and, when alive, a vsock.sock and a QMP server.
func (w *world) sandbox(t *testing.T, id string, pid int, alive bool, containers ...string) string {
	t.Helper()
	dir := filepath.Join(w.stateDir, id)
	writeFile(t, filepath.Join(dir, "console.log"), "Linux version 6.1\nagent serving\n")
	for _, c := range containers {
		if err := os.MkdirAll(filepath.Join(dir, "shared", c, "rootfs"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range []string{"qemu", "virtiofsd"} {
		p := pid + i
		writeFile(t, filepath.Join(dir, name+".pid"), strconv.Itoa(p)+"\n")
		cmdline := "/bin/" + name + "\x00/other"
		if alive {
			cmdline = "/bin/" + name + "\x00" + dir + "/x.sock"
		}
		pd := filepath.Join(w.procRoot, strconv.Itoa(p))
		writeFile(t, filepath.Join(pd, "cmdline"), cmdline)
		writeFile(t, filepath.Join(pd, "status"), "VmRSS:\t 4096 kB\nThreads:\t2\n")
		writeFile(t, filepath.Join(pd, "stat"), fmt.Sprintf("%d (%s) S 1 1 1 0 -1 0 0 0 0 0 100 20 0 0\n", p, name))
		writeFile(t, filepath.Join(pd, "fd", "0"), "")
	}
	if alive {
		l, err := net.Listen("unix", filepath.Join(dir, "vsock.sock"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		serveQMP(t, filepath.Join(dir, "qmp.sock"))
	}
	return dir
}

// run executes veil with args against w; it returns stdout, stderr and
// the exit code main would use.
func (w *world) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newRootCommandEnv(w.env())
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader("stdin-data"))
	cmd.SetArgs(append([]string{"--config", w.config}, args...))
	err := cmd.ExecuteContext(context.Background())
	code := 0
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
		errb.WriteString(ee.msg)
	case err != nil:
		code = 1
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

// serveQMP answers QMP's greeting, qmp_capabilities and query-status.
func serveQMP(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_, _ = c.Write([]byte(`{"QMP": {"version": {}}}` + "\n"))
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if strings.Contains(sc.Text(), "query-status") {
						_, _ = c.Write([]byte(`{"return": {"status": "running", "running": true}}` + "\n"))
					} else {
						_, _ = c.Write([]byte(`{"return": {}}` + "\n"))
					}
				}
			}()
		}
	}()
}

// fakeAgent answers DebugExec by echoing argv and Stats from fixed values.
type fakeAgent struct{}

func (fakeAgent) DebugExec(_ context.Context, r *api.DebugExecRequest) (*api.DebugExecResponse, error) {
	if r.Argv[0] == "false" {
		return &api.DebugExecResponse{ExitStatus: 1, Stderr: []byte("failed\n")}, nil
	}
	return &api.DebugExecResponse{Stdout: []byte(strings.Join(r.Argv, " ") + "|" + string(r.Stdin) + "\n")}, nil
}

func (fakeAgent) Stats(context.Context, *api.StatsRequest) (*api.StatsResponse, error) {
	return &api.StatsResponse{MemoryTotalBytes: 256 << 20, MemoryAvailableBytes: 128 << 20, Cpu: &api.CPUStats{Online: 1, UserUsec: 1_500_000},
		Containers: []*api.ContainerStats{{ContainerId: "c1", CpuUsageUsec: 2_000_000, MemoryCurrentBytes: 1 << 20, PidsCurrent: 3}}}, nil
}

func (fakeAgent) Close() error { return nil }

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
}
