package inspect

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestList(t *testing.T) {
	f := newFixture(t)
	f.sandbox(t, "b-running", []fakeHelper{{"qemu", 101, true}, {"virtiofsd", 102, true}, {"vhost-vsock", 103, true}}, []string{"c1", "c2"}, true)
	f.sandbox(t, "a-dead", []fakeHelper{{"qemu", 201, false}, {"virtiofsd", 202, false}}, nil, false)
	f.sandbox(t, "c-ch", []fakeHelper{{"cloud-hypervisor", 301, true}}, nil, false)
	f.sandbox(t, "d-empty", nil, nil, false)
	must(t, os.WriteFile(filepath.Join(f.stateDir, "stray-file"), nil, 0o644))

	sbs, err := f.reader().List()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sb := range sbs {
		ids = append(ids, sb.ID)
	}
	if !slices.Equal(ids, []string{"a-dead", "b-running", "c-ch", "d-empty"}) {
		t.Fatalf("ids %v", ids)
	}
	cases := []struct {
		name       string
		sb         SandboxInfo
		hv         string
		pid        int
		state      string
		containers []string
		sockets    int
		helpers    int
	}{
		{"dead qemu", sbs[0], "qemu", 201, StateDead, []string{}, 0, 2},
		{"running qemu", sbs[1], "qemu", 101, StateRunning, []string{"c1", "c2"}, 1, 3},
		{"running cloud-hypervisor", sbs[2], "cloud-hypervisor", 301, StateRunning, []string{}, 0, 1},
		{"no pid files", sbs[3], "", 0, StateUnknown, []string{}, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := tc.sb
			if sb.Hypervisor != tc.hv || sb.VMMPid != tc.pid || sb.State != tc.state {
				t.Errorf("hypervisor %q pid %d state %s, want %q %d %s", sb.Hypervisor, sb.VMMPid, sb.State, tc.hv, tc.pid, tc.state)
			}
			if !slices.Equal(sb.Containers, tc.containers) || len(sb.Sockets) != tc.sockets || len(sb.Helpers) != tc.helpers {
				t.Errorf("containers %v sockets %v helpers %v", sb.Containers, sb.Sockets, sb.Helpers)
			}
			if time.Since(sb.Created) > time.Hour || sb.ConsoleLog != filepath.Join(sb.Dir, "console.log") {
				t.Errorf("created %v console %s", sb.Created, sb.ConsoleLog)
			}
		})
	}
}

func TestGet(t *testing.T) {
	f := newFixture(t)
	f.sandbox(t, "sb", []fakeHelper{{"qemu", 7, true}}, nil, false)
	cases := []struct {
		name    string
		id      string
		wantErr error
		invalid bool
	}{
		{name: "exists", id: "sb"},
		{name: "missing", id: "nope", wantErr: ErrNotFound},
		{name: "escape", id: "../x", invalid: true},
		{name: "empty", id: "", invalid: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := f.reader().Get(tc.id)
			switch {
			case tc.invalid:
				if err == nil {
					t.Fatal("invalid id accepted")
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
			case err != nil || sb.ID != tc.id:
				t.Fatalf("%+v, %v", sb, err)
			}
		})
	}
}

func TestListMissingStateDir(t *testing.T) {
	r := &Reader{StateDir: filepath.Join(t.TempDir(), "none"), ProcRoot: "/proc"}
	sbs, err := r.List()
	if err != nil || len(sbs) != 0 {
		t.Fatalf("%v, %v", sbs, err)
	}
}

func TestUsage(t *testing.T) {
	f := newFixture(t)
	f.proc(t, 55, "x")
	cases := []struct {
		name    string
		r       *Reader
		pid     int
		wantErr bool
		check   func(t *testing.T, u ProcUsage)
	}{
		{name: "fake proc", r: f.reader(), pid: 55, check: func(t *testing.T, u ProcUsage) {
			if u.RSSBytes != 2048*1024 || u.UserTime != 2500*time.Millisecond || u.SystemTime != 500*time.Millisecond || u.Threads != 3 || u.OpenFDs != 3 {
				t.Errorf("%+v", u)
			}
		}},
		{name: "this process", r: &Reader{ProcRoot: "/proc"}, pid: os.Getpid(), check: func(t *testing.T, u ProcUsage) {
			if u.RSSBytes == 0 || u.Threads == 0 || u.OpenFDs < 3 {
				t.Errorf("%+v", u)
			}
		}},
		{name: "no such pid", r: f.reader(), pid: 99, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.r.Usage(tc.pid)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil {
				tc.check(t, u)
			}
		})
	}
}
