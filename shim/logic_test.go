package shim

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-runtime/veil/agent/api"
)

func TestProcessTransitions(t *testing.T) {
	type step struct {
		op         string // "start", "run" or "exit"
		wantErr    error
		recorded   bool
		wasRunning bool
		announced  bool
	}
	cases := []struct {
		name      string
		steps     []step
		wantState procState
		wantTask  task.Status
	}{
		{name: "created", wantState: stateCreated, wantTask: task.Status_CREATED},
		{name: "starting", steps: []step{{op: "start"}}, wantState: stateStarting, wantTask: task.Status_CREATED},
		{name: "run", steps: []step{{op: "start"}, {op: "run"}}, wantState: stateRunning, wantTask: task.Status_RUNNING},
		{name: "run without start", steps: []step{{op: "run", wantErr: errdefs.ErrFailedPrecondition}}, wantState: stateCreated, wantTask: task.Status_CREATED},
		{name: "second start refused", steps: []step{{op: "start"}, {op: "start", wantErr: errdefs.ErrFailedPrecondition}}, wantState: stateStarting, wantTask: task.Status_CREATED},
		{name: "run then exit", steps: []step{{op: "start"}, {op: "run"}, {op: "exit", recorded: true, wasRunning: true, announced: true}}, wantState: stateStopped, wantTask: task.Status_STOPPED},
		{name: "exit without running", steps: []step{{op: "exit", recorded: true}}, wantState: stateStopped, wantTask: task.Status_STOPPED},
		{name: "failed start", steps: []step{{op: "start"}, {op: "exit", recorded: true}}, wantState: stateStopped, wantTask: task.Status_STOPPED},
		{name: "second exit ignored", steps: []step{{op: "start"}, {op: "run"}, {op: "exit", recorded: true, wasRunning: true, announced: true}, {op: "exit"}}, wantState: stateStopped, wantTask: task.Status_STOPPED},
		{name: "run twice", steps: []step{{op: "start"}, {op: "run"}, {op: "run", wantErr: errdefs.ErrFailedPrecondition}}, wantState: stateRunning, wantTask: task.Status_RUNNING},
		{name: "start after exit", steps: []step{{op: "exit", recorded: true}, {op: "start", wantErr: errdefs.ErrNotFound}}, wantState: stateStopped, wantTask: task.Status_STOPPED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProcess("c", "", stdioPaths{}, nil)
			for i, s := range tc.steps {
				var err error
				switch s.op {
				case "start":
					err = p.markStarting()
				case "run":
					err = p.markRunning()
				case "exit":
					announced := false
					rec, was := p.markExited(7, time.Unix(10, 0), func(ps processStatus) {
						announced = true
						// The exit is not visible while it is announced.
						select {
						case <-p.exited:
							t.Errorf("step %d: exited closed before the announcement", i)
						default:
						}
						if st := p.status().State; st != stateRunning {
							t.Errorf("step %d: state %v during the announcement, want running", i, st)
						}
						if ps.ExitStatus != 7 || ps.State != stateStopped {
							t.Errorf("step %d: announced %+v", i, ps)
						}
					})
					if rec != s.recorded || was != s.wasRunning || announced != s.announced {
						t.Fatalf("step %d: markExited = %v,%v (announced %v) want %v,%v (%v)", i, rec, was, announced, s.recorded, s.wasRunning, s.announced)
					}
				}
				if (s.wantErr == nil) != (err == nil) || (s.wantErr != nil && !errors.Is(err, s.wantErr)) {
					t.Fatalf("step %d: %s = %v, want %v", i, s.op, err, s.wantErr)
				}
			}
			st := p.status()
			if st.State != tc.wantState || st.State.taskStatus() != tc.wantTask {
				t.Fatalf("state %v (%v), want %v (%v)", st.State, st.State.taskStatus(), tc.wantState, tc.wantTask)
			}
			select {
			case <-p.exited:
				if st.State != stateStopped {
					t.Fatal("exited closed but not stopped")
				}
				if st.ExitStatus != 7 {
					t.Fatalf("exit status %d, want 7 (first exit wins)", st.ExitStatus)
				}
			default:
				if st.State == stateStopped {
					t.Fatal("stopped but exited not closed")
				}
			}
		})
	}
}

func TestContainerExecs(t *testing.T) {
	c := newContainer("c", "/b", nil, newProcess("c", "", stdioPaths{}, nil))
	if err := c.addExec(newProcess("c", "x", stdioPaths{}, nil)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{name: "duplicate exec", op: func() error { return c.addExec(newProcess("c", "x", stdioPaths{}, nil)) }, wantErr: errdefs.ErrAlreadyExists},
		{name: "init by empty id", op: func() error { p, err := c.process(""); _ = p; return err }},
		{name: "unknown exec", op: func() error { _, err := c.process("nope"); return err }, wantErr: errdefs.ErrNotFound},
		{name: "remove running exec", op: func() error {
			p, _ := c.process("x")
			_ = p.markStarting()
			_ = p.markRunning()
			_, err := c.removeExec("x")
			return err
		}, wantErr: errdefs.ErrFailedPrecondition},
		{name: "remove exited exec", op: func() error {
			p, _ := c.process("x")
			p.markExited(0, time.Now(), nil)
			_, err := c.removeExec("x")
			return err
		}},
		{name: "removed exec is gone", op: func() error { _, err := c.process("x"); return err }, wantErr: errdefs.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestWantStdio(t *testing.T) {
	cases := []struct {
		name  string
		paths stdioPaths
		want  *api.Stdio
	}{
		{name: "none", want: &api.Stdio{}},
		{name: "all three", paths: stdioPaths{Stdin: "i", Stdout: "o", Stderr: "e"}, want: &api.Stdio{Stdin: true, Stdout: true, Stderr: true}},
		{name: "output only", paths: stdioPaths{Stdout: "o", Stderr: "e"}, want: &api.Stdio{Stdout: true, Stderr: true}},
		{name: "terminal drops stderr", paths: stdioPaths{Stdin: "i", Stdout: "o", Stderr: "e", Terminal: true}, want: &api.Stdio{Stdin: true, Stdout: true, Terminal: true}},
		{name: "stdout only", paths: stdioPaths{Stdout: "o"}, want: &api.Stdio{Stdout: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := wantStdio(tc.paths)
			if got.Stdin != tc.want.Stdin || got.Stdout != tc.want.Stdout || got.Stderr != tc.want.Stderr || got.Terminal != tc.want.Terminal {
				t.Fatalf("wantStdio(%+v) = %v, want %v", tc.paths, got, tc.want)
			}
		})
	}
}

func TestErrorConversion(t *testing.T) {
	const notFoundMsg = `exec: "nosuchcmd": executable file not found in $PATH`
	cases := []struct {
		name     string
		err      error
		wantCode codes.Code
		wantMsg  []string
	}{
		{name: "nil", err: nil, wantCode: codes.OK},
		{name: "agent unknown error keeps message",
			err:      fromAgent(status.Error(codes.Unknown, notFoundMsg), "start container %s", "c1"),
			wantCode: codes.Unknown, wantMsg: []string{"start container c1", notFoundMsg}},
		{name: "agent not found stays not found",
			err:      fromAgent(status.Error(codes.NotFound, "no such container"), "signal %s", "c1"),
			wantCode: codes.NotFound, wantMsg: []string{"signal c1", "no such container"}},
		{name: "native errdefs class", err: errProcessFinished, wantCode: codes.NotFound, wantMsg: []string{"process already finished"}},
		{name: "not implemented", err: errdefs.ErrNotImplemented, wantCode: codes.Unimplemented},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := toService(tc.err)
			if tc.err == nil {
				if got != nil {
					t.Fatalf("toService(nil) = %v", got)
				}
				return
			}
			st, ok := status.FromError(got)
			if !ok {
				t.Fatalf("not a status: %v", got)
			}
			if st.Code() != tc.wantCode {
				t.Fatalf("code %v, want %v (%v)", st.Code(), tc.wantCode, got)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(st.Message(), m) {
					t.Fatalf("message %q lacks %q", st.Message(), m)
				}
			}
		})
	}
}

func TestGuestRootfsPath(t *testing.T) {
	if got, want := guestRootfsPath("c1"), api.SharedDir+"/c1/rootfs"; got != want {
		t.Errorf("guest rootfs %q, want %q", got, want)
	}
}

func TestSandboxIDFor(t *testing.T) {
	cases := []struct {
		name, want, wantErr string
		ann                 map[string]string
	}{
		{name: "own id", want: "c1"},
		{name: "cri pod", ann: map[string]string{"io.kubernetes.cri.sandbox-id": "pod"}, want: "pod"},
		{name: "group outside a pod", ann: map[string]string{"io.containerd.veil.v2.group": "g"}, want: "g"},
		{name: "group naming the container's own pod", ann: map[string]string{"io.kubernetes.cri.sandbox-id": "pod", "io.containerd.veil.v2.group": "pod"}, want: "pod"},
		{name: "group cannot move a pod's container into another pod's VM", ann: map[string]string{"io.kubernetes.cri.sandbox-id": "pod", "io.containerd.veil.v2.group": "otherpod"}, wantErr: "names another sandbox than its pod"},
		{name: "empty annotation ignored", ann: map[string]string{"io.kubernetes.cri.sandbox-id": ""}, want: "c1"},
		{name: "bad group id", ann: map[string]string{"io.containerd.veil.v2.group": "../x"}, wantErr: "invalid sandbox id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sandboxIDFor("c1", tc.ann)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("sandboxIDFor = %q, %v; want InvalidArgument with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestGuestSpec(t *testing.T) {
	ns := func(nss ...specs.LinuxNamespace) specs.Spec {
		return specs.Spec{Linux: &specs.Linux{Namespaces: nss}}
	}
	cases := []struct {
		name string
		in   specs.Spec
		want []specs.LinuxNamespace
	}{
		{name: "ctr run: fresh netns kept",
			in:   ns(specs.LinuxNamespace{Type: specs.PIDNamespace}, specs.LinuxNamespace{Type: specs.NetworkNamespace}),
			want: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}}},
		{name: "pod netns becomes the VM's network",
			in:   ns(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/var/run/netns/cni-1"}, specs.LinuxNamespace{Type: specs.MountNamespace}),
			want: []specs.LinuxNamespace{{Type: specs.MountNamespace}}},
		{name: "other namespace paths are left to the agent",
			in:   ns(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: "/proc/42/ns/ipc"}),
			want: []specs.LinuxNamespace{{Type: specs.IPCNamespace, Path: "/proc/42/ns/ipc"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := guestSpec(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var got specs.Spec
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Linux.Namespaces) != len(tc.want) {
				t.Fatalf("namespaces %+v, want %+v", got.Linux.Namespaces, tc.want)
			}
			for i := range tc.want {
				if got.Linux.Namespaces[i] != tc.want[i] {
					t.Fatalf("namespaces %+v, want %+v", got.Linux.Namespaces, tc.want)
				}
			}
			if tc.in.Linux.Namespaces[0].Path != "" && tc.in.Linux.Namespaces[0].Path == "" {
				t.Fatal("input modified")
			}
		})
	}
}

func TestHostNetNS(t *testing.T) {
	cases := []struct {
		name string
		spec specs.Spec
		want string
	}{
		{name: "no linux"},
		{name: "fresh", spec: specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace}}}}},
		{name: "pod", spec: specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/run/netns/x"}}}}, want: "/run/netns/x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (&bundleSpec{Spec: tc.spec}).hostNetNS(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCleanupState(t *testing.T) {
	withState := t.TempDir()
	if err := writeShimState(withState, shimState{SandboxID: "sb"}); err != nil {
		t.Fatal(err)
	}
	withPodSpec := t.TempDir()
	spec := `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod"}}`
	if err := os.WriteFile(filepath.Join(withPodSpec, specFile), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, bundle string
		want         shimState
	}{
		{name: "recorded", bundle: withState, want: shimState{SandboxID: "sb"}},
		{name: "derived from pod spec", bundle: withPodSpec, want: shimState{SandboxID: "pod"}},
		{name: "derived from id", bundle: t.TempDir(), want: shimState{SandboxID: "c1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cleanupState(tc.bundle, "c1", "/state")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestShimLiveness(t *testing.T) {
	withBootstrap := t.TempDir()
	if err := os.WriteFile(filepath.Join(withBootstrap, bootstrapFile), []byte(`{"version":3,"address":"unix:///run/containerd/s/abc","protocol":"ttrpc"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	addrCases := []struct {
		name, bundle, want string
	}{
		{name: "recorded", bundle: withBootstrap, want: "unix:///run/containerd/s/abc"},
		{name: "none", bundle: t.TempDir()},
	}
	for _, tc := range addrCases {
		t.Run("address/"+tc.name, func(t *testing.T) {
			if got := shimAddress(tc.bundle); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	pidCases := []struct {
		name string
		pid  int
		want bool
	}{
		{name: "no pid", pid: 0},
		{name: "not a shim (the test binary)", pid: os.Getpid()},
		{name: "gone", pid: 1 << 30},
	}
	for _, tc := range pidCases {
		t.Run("pid/"+tc.name, func(t *testing.T) {
			if got := isShimProcess(tc.pid, 0); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestContainerMetrics(t *testing.T) {
	cases := []struct {
		name string
		in   *api.ContainerStats
	}{
		{name: "zero", in: &api.ContainerStats{}},
		{name: "filled", in: &api.ContainerStats{CpuUsageUsec: 10, CpuUserUsec: 7, CpuSystemUsec: 3, MemoryCurrentBytes: 4096, MemoryLimitBytes: 8192, PidsCurrent: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := containerMetrics(tc.in)
			if m.CPU.UsageUsec != tc.in.CpuUsageUsec || m.CPU.UserUsec != tc.in.CpuUserUsec || m.CPU.SystemUsec != tc.in.CpuSystemUsec ||
				m.Memory.Usage != tc.in.MemoryCurrentBytes || m.Memory.UsageLimit != tc.in.MemoryLimitBytes || m.Pids.Current != tc.in.PidsCurrent {
				t.Fatalf("metrics %+v from %+v", m, tc.in)
			}
		})
	}
}
