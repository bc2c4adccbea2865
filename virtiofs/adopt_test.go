package virtiofs

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// startFake starts a stand-in for virtiofsd in dir, as Start would in the
// process that later hands it over: pid file, and a command line naming
// dir. It returns once the stand-in runs its script (its command line is
// in place).
func startFake(t *testing.T, dir string) *proc.Process {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	p, err := proc.Start(context.Background(), proc.Spec{
		Name: processName, Dir: dir, Path: "/bin/sh",
		// "; :" keeps sh from exec'ing sleep, so the marker stays in argv.
		Args:       []string{"-c", "echo >&3; exec 3>&-; sleep 100; :", filepath.Join(dir, processName)},
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
		t.Fatalf("fake virtiofsd: %v", err)
	}
	return p
}

// makeSocket leaves a Unix socket file at path, as Start does.
func makeSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	_ = ln.Close()
}

func TestAdoptRefused(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr string // a file the error names
	}{
		{name: "no socket", setup: func(*testing.T, string) {}, wantErr: socketName},
		{
			name:    "no pid file",
			setup:   func(t *testing.T, dir string) { makeSocket(t, socketPath(dir)) },
			wantErr: processName + ".pid",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			_, err := Adopt(context.Background(), Config{Dir: dir})
			if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Adopt: %v; want a missing %s", err, tc.wantErr)
			}
		})
	}
}

func TestAdoptStop(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	started := startFake(t, dir)
	makeSocket(t, socketPath(dir))
	d, err := Adopt(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if d.Pid() != started.Pid() || d.Socket() != socketPath(dir) {
		t.Fatalf("adopted pid %d, socket %s; want %d, %s", d.Pid(), d.Socket(), started.Pid(), socketPath(dir))
	}
	ns, err := d.MountNamespace()
	if err != nil {
		t.Fatal(err)
	}
	_ = ns.Close()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed after Stop")
	}
	for _, f := range []string{socketPath(dir), filepath.Join(dir, processName+".pid")} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", f, err)
		}
	}
	if _, err := d.MountNamespace(); !errors.Is(err, statedir.ErrServerGone) {
		t.Errorf("MountNamespace after Stop: %v, want ErrServerGone", err)
	}
}
