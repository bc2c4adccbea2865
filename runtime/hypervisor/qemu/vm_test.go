package qemu

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/proc"
)

// syncBuffer is a log sink safe for the watcher and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startFake starts a stand-in for QEMU or vhost-device-vsock that writes
// "<name> says goodbye" to its log and sleeps; it returns once the line
// was written.
func startFake(t *testing.T, dir, name string) *proc.Process {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	p, err := proc.Start(context.Background(), proc.Spec{
		Name: name, Dir: dir, Path: "/bin/sh",
		Args:       []string{"-c", "echo " + name + " says goodbye; echo >&3; exec 3>&-; exec sleep 100", dir},
		ExtraFiles: []*os.File{w},
	})
	_ = w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Kill(ctx)
	})
	if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

func TestVMDoneFollowsBothProcesses(t *testing.T) {
	cases := []struct {
		name string
		// end ends the VM or one of its processes.
		end func(ctx context.Context, v *vm) error
		// wantLog is in the log when a process died on its own.
		wantLog []string
	}{
		{
			name:    "vhost-device-vsock dies",
			end:     func(_ context.Context, v *vm) error { return syscall.Kill(v.vsockd.Pid(), syscall.SIGKILL) },
			wantLog: []string{vhostVsockName + " died", vhostVsockName + " says goodbye"},
		},
		{
			name:    "qemu dies",
			end:     func(_ context.Context, v *vm) error { return syscall.Kill(v.qemu.Pid(), syscall.SIGKILL) },
			wantLog: []string{qemuName + " died", qemuName + " says goodbye"},
		},
		{
			name: "stopped",
			end:  func(ctx context.Context, v *vm) error { return v.Stop(ctx) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var logs syncBuffer
			l := logrus.New()
			l.Out = &logs
			ctx, cancel := context.WithTimeout(log.WithLogger(context.Background(), logrus.NewEntry(l)), 20*time.Second)
			defer cancel()
			v := &vm{
				cfg:         hypervisor.VMConfig{ID: "sb1", Dir: dir, VsockSocket: filepath.Join(dir, "vsock.sock")},
				stopTimeout: time.Second,
				qmpPath:     filepath.Join(dir, qmpSocketName), // absent: quit fails, Stop kills
				vsockd:      startFake(t, dir, vhostVsockName),
				qemu:        startFake(t, dir, qemuName),
				done:        make(chan struct{}),
				stopping:    make(chan struct{}),
			}
			watched := make(chan struct{})
			go func() {
				v.watch(ctx)
				close(watched)
			}()
			select {
			case <-v.Done():
				t.Fatal("Done closed while both processes run")
			default:
			}
			if err := tc.end(ctx, v); err != nil {
				t.Fatal(err)
			}
			for what, ch := range map[string]<-chan struct{}{
				"Done": v.Done(), "watch": watched, "qemu": v.qemu.Done(), "vhost-device-vsock": v.vsockd.Done(),
			} {
				select {
				case <-ch:
				case <-ctx.Done():
					t.Fatalf("%s not closed: the survivor was not stopped", what)
				}
			}
			for _, name := range []string{qemuName, vhostVsockName} {
				if _, err := os.Stat(filepath.Join(dir, name+".pid")); !os.IsNotExist(err) {
					t.Errorf("%s pid file left: %v", name, err)
				}
			}
			got := logs.String()
			for _, want := range tc.wantLog {
				if !strings.Contains(got, want) {
					t.Errorf("log lacks %q:\n%s", want, got)
				}
			}
			if tc.wantLog == nil && strings.Contains(got, "died") {
				t.Errorf("a requested stop was logged as a death:\n%s", got)
			}
		})
	}
}
