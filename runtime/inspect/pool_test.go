package inspect

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// poolFixture is a state directory with a plain sandbox, a sandbox that
// claimed warm pool VM vm1, an unclaimed pool VM, and links that are no
// sandboxes.
func poolFixture(t *testing.T) (f *fixture, claimedDir string) {
	t.Helper()
	f = newFixture(t)
	f.sandbox(t, "a-plain", []fakeHelper{{"qemu", 101, true}}, []string{"c1"}, false)
	claimedDir = f.poolVM(t, "vm1", "b-claimed", []fakeHelper{{"qemu", 201, true}, {"virtiofsd", 202, true}}, []string{"c2"}, true)
	f.poolVM(t, "vm2", "", []fakeHelper{{"qemu", 301, true}}, nil, false)
	// Its pool VM is gone (a crash between the two removals).
	must(t, os.Symlink(".pool/vm9", filepath.Join(f.stateDir, "c-dangling")))
	// Links Veil never makes.
	must(t, os.Symlink("/etc", filepath.Join(f.stateDir, "d-outside")))
	must(t, os.Symlink(".pool/../../proc", filepath.Join(f.stateDir, "e-up")))
	must(t, os.WriteFile(filepath.Join(f.stateDir, ".uid-100000"), nil, 0o600))
	return f, claimedDir
}

func TestListPool(t *testing.T) {
	f, claimedDir := poolFixture(t)
	sbs, err := f.reader().List()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sb := range sbs {
		ids = append(ids, sb.ID)
	}
	if !slices.Equal(ids, []string{"a-plain", "b-claimed"}) {
		t.Fatalf("ids %v, want the plain and the claimed sandbox only", ids)
	}
	cases := []struct {
		name       string
		sb         SandboxInfo
		dir, pool  string
		pid        int
		containers []string
		sockets    int
	}{
		{name: "plain", sb: sbs[0], dir: filepath.Join(f.stateDir, "a-plain"), pid: 101, containers: []string{"c1"}},
		{name: "claimed pool VM", sb: sbs[1], dir: claimedDir, pool: "vm1", pid: 201, containers: []string{"c2"}, sockets: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := tc.sb
			if sb.Dir != tc.dir || sb.PoolVM != tc.pool || sb.ConsoleLog != filepath.Join(tc.dir, "console.log") {
				t.Errorf("dir %s pool %q console %s, want %s %q", sb.Dir, sb.PoolVM, sb.ConsoleLog, tc.dir, tc.pool)
			}
			// The helpers name the real directory: they are alive.
			if sb.State != StateRunning || sb.VMMPid != tc.pid || sb.Hypervisor != "qemu" {
				t.Errorf("state %s pid %d hypervisor %s", sb.State, sb.VMMPid, sb.Hypervisor)
			}
			if !slices.Equal(sb.Containers, tc.containers) || len(sb.Sockets) != tc.sockets {
				t.Errorf("containers %v sockets %v", sb.Containers, sb.Sockets)
			}
			for _, h := range sb.Helpers {
				if !h.Alive || filepath.Dir(h.PidFile) != tc.dir {
					t.Errorf("helper %+v", h)
				}
			}
		})
	}
}

func TestGetPool(t *testing.T) {
	f, claimedDir := poolFixture(t)
	cases := []struct {
		name    string
		id      string
		dir     string
		wantErr error
		msg     string
	}{
		{name: "plain", id: "a-plain", dir: filepath.Join(f.stateDir, "a-plain")},
		{name: "claimed", id: "b-claimed", dir: claimedDir},
		{name: "a pool VM id is no sandbox id", id: "vm1", wantErr: ErrNotFound},
		{name: "dangling link", id: "c-dangling", wantErr: ErrNotFound},
		{name: "link outside", id: "d-outside", wantErr: errdefs.ErrFailedPrecondition, msg: filepath.Join(f.stateDir, "d-outside")},
		{name: "link up through .pool", id: "e-up", wantErr: errdefs.ErrFailedPrecondition, msg: filepath.Join(f.stateDir, "e-up")},
		{name: ".pool", id: ".pool", wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := f.reader().Get(tc.id)
			dir, derr := f.reader().Dir(tc.id)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.msg) || !errors.Is(derr, tc.wantErr) {
					t.Fatalf("Get: %v, Dir: %v; want %v naming %q", err, derr, tc.wantErr, tc.msg)
				}
				return
			}
			if err != nil || derr != nil || sb.ID != tc.id || sb.Dir != tc.dir || dir != tc.dir {
				t.Fatalf("Get = %+v, %v; Dir = %s, %v; want dir %s", sb, err, dir, derr, tc.dir)
			}
		})
	}
}

// TestConsolePool reads the console of a sandbox that claimed a pool VM.
func TestConsolePool(t *testing.T) {
	f, _ := poolFixture(t)
	var buf bytes.Buffer
	if err := f.reader().Console(context.Background(), "b-claimed", &buf, false); err != nil || buf.String() != "boot\nagent serving\n" {
		t.Fatalf("Console = %q, %v", buf.String(), err)
	}
}
