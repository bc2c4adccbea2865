package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/proc"
)

// startAdoptable starts a stand-in for QEMU or vhost-device-vsock as
// Driver.Start would in the process that later hands the VM over: pid
// file in dir, command line naming dir. It returns once the stand-in runs
// its script; Cleanup kills it.
func startAdoptable(t *testing.T, dir, name string) *proc.Process {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	p, err := proc.Start(context.Background(), proc.Spec{
		Name: name, Dir: dir, Path: "/bin/sh",
		// "; :" keeps sh from exec'ing sleep, so the marker stays in argv.
		Args:       []string{"-c", "echo >&3; exec 3>&-; sleep 100; :", filepath.Join(dir, name)},
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

// serveQMP answers QMP on path like QEMU: a greeting, then {"return": {}}
// to every command; on "quit" it calls onQuit.
func serveQMP(t *testing.T, path string, onQuit func()) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				if _, err := c.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n")); err != nil {
					return
				}
				dec := json.NewDecoder(c)
				for {
					var req struct {
						Execute string `json:"execute"`
					}
					if dec.Decode(&req) != nil {
						return
					}
					if _, err := c.Write([]byte(`{"return": {}}` + "\n")); err != nil {
						return
					}
					if req.Execute == "quit" {
						onQuit()
					}
				}
			}()
		}
	}()
}

func TestAdoptRefused(t *testing.T) {
	cases := []struct {
		name string
		// setup leaves what the starting process left in dir.
		setup func(t *testing.T, dir string)
		// wantErr is in the error; notExist: it wraps os.ErrNotExist (a
		// failed QMP wait may, too: its last dial found no socket).
		wantErr  []string
		notExist bool
	}{
		{
			name:     "nothing running",
			setup:    func(*testing.T, string) {},
			wantErr:  []string{vhostVsockName + ".pid"},
			notExist: true,
		},
		{
			name:     "no qemu",
			setup:    func(t *testing.T, dir string) { startAdoptable(t, dir, vhostVsockName) },
			wantErr:  []string{qemuName + ".pid"},
			notExist: true,
		},
		{
			name: "qemu does not answer on QMP",
			setup: func(t *testing.T, dir string) {
				startAdoptable(t, dir, vhostVsockName)
				startAdoptable(t, dir, qemuName)
			},
			wantErr: []string{"qmp", qmpSocketName, "not ready"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			// Bounds the QMP wait of the last case.
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			d := &Driver{StopTimeout: time.Second}
			v, err := d.Adopt(ctx, hypervisor.VMConfig{ID: "sb1", Dir: dir})
			if err == nil {
				_ = v.Stop(context.Background())
				t.Fatal("Adopt succeeded")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.notExist && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("error %q does not wrap os.ErrNotExist", err)
			}
			// What runs is left running, with its pid file.
			for _, name := range []string{qemuName, vhostVsockName} {
				if _, err := os.Stat(filepath.Join(dir, name+".pid")); err != nil {
					continue
				}
				if !proc.Matches(pidOf(t, dir, name), dir+"/") {
					t.Errorf("%s no longer runs after a failed Adopt", name)
				}
			}
		})
	}
}

// pidOf reads the pid file of helper name in dir.
func pidOf(t *testing.T, dir, name string) int {
	t.Helper()
	p, err := proc.Adopt(context.Background(), proc.Spec{Name: name, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	return p.Pid()
}

func TestAdoptedVMDoneFollowsBothProcesses(t *testing.T) {
	cases := []struct {
		name string
		end  func(ctx context.Context, v *vm) error
	}{
		{name: "stopped", end: func(ctx context.Context, v *vm) error { return v.Stop(ctx) }},
		{
			name: "vhost-device-vsock dies",
			end:  func(_ context.Context, v *vm) error { return syscall.Kill(v.vsockd.Pid(), syscall.SIGKILL) },
		},
		{
			name: "qemu dies",
			end:  func(_ context.Context, v *vm) error { return syscall.Kill(v.qemu.Pid(), syscall.SIGKILL) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			quiet := logrus.New()
			quiet.Out = io.Discard // watch logs the deaths this test causes
			ctx, cancel := context.WithTimeout(log.WithLogger(context.Background(), logrus.NewEntry(quiet)), 20*time.Second)
			defer cancel()
			vsockd := startAdoptable(t, dir, vhostVsockName)
			qemu := startAdoptable(t, dir, qemuName)
			// QEMU exits on quit.
			serveQMP(t, filepath.Join(dir, qmpSocketName), func() { _ = syscall.Kill(qemu.Pid(), syscall.SIGTERM) })
			d := &Driver{StopTimeout: 10 * time.Second, MaxVCPUs: 4}
			cfg := hypervisor.VMConfig{ID: "sb1", Dir: dir, VCPUs: 2, VsockSocket: filepath.Join(dir, "vsock.sock")}
			hv, err := d.Adopt(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			v := hv.(*vm)
			if v.Pid() != qemu.Pid() || v.HelperPids()["vhost-device-vsock"] != vsockd.Pid() {
				t.Fatalf("adopted pids %d, %v; want %d, %d", v.Pid(), v.HelperPids(), qemu.Pid(), vsockd.Pid())
			}
			if want := d.newVM(cfg); v.maxVCPUs != want.maxVCPUs || v.stopTimeout != want.stopTimeout || v.qmpPath != want.qmpPath {
				t.Errorf("adopted vm: maxVCPUs %d, stopTimeout %v, qmp %s; Start would have %d, %v, %s",
					v.maxVCPUs, v.stopTimeout, v.qmpPath, want.maxVCPUs, want.stopTimeout, want.qmpPath)
			}
			select {
			case <-v.Done():
				t.Fatal("Done closed while both processes run")
			default:
			}
			if err := tc.end(ctx, v); err != nil {
				t.Fatal(err)
			}
			for what, ch := range map[string]<-chan struct{}{
				"Done": v.Done(), "qemu": qemu.Done(), "vhost-device-vsock": vsockd.Done(),
			} {
				select {
				case <-ch:
				case <-ctx.Done():
					t.Fatalf("%s not closed: the survivor was not stopped", what)
				}
			}
			// Done closes before watch's Stop finished: wait for it.
			if err := v.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{qemuName, vhostVsockName} {
				if _, err := os.Stat(filepath.Join(dir, name+".pid")); !os.IsNotExist(err) {
					t.Errorf("%s pid file left: %v", name, err)
				}
			}
		})
	}
}
