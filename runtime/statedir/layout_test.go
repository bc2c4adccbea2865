package statedir

import (
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/veil-runtime/veil/agent/api"
)

func TestNew(t *testing.T) {
	cases := []struct {
		name, stateDir, id string
		wantErr            string
	}{
		{name: "cri id", stateDir: "/run/veil/sandboxes", id: strings.Repeat("0123456789abcdef", 4)},
		{name: "longest id that fits the default state dir", stateDir: "/run/veil/sandboxes", id: strings.Repeat("a", 71)},
		{name: "containerd's longest id overflows sun_path", stateDir: "/run/veil/sandboxes", id: strings.Repeat("a", 76), wantErr: "use an id of at most 71 characters"},
		{name: "long state dir", stateDir: "/" + strings.Repeat("d", 90), id: "abcdefghij", wantErr: "Unix socket path"},
		{name: "slash", stateDir: "/run", id: "a/b", wantErr: "invalid sandbox id"},
		{name: "dot dot", stateDir: "/run", id: "..", wantErr: "invalid sandbox id"},
		{name: "empty", stateDir: "/run", id: "", wantErr: "invalid sandbox id"},
		{name: "relative state dir", stateDir: "run", id: "a", wantErr: "not an absolute path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(tc.stateDir, tc.id)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if d.Path() != tc.stateDir+"/"+tc.id || d.SharedDir() != d.Path()+"/shared" {
					t.Fatalf("paths %s %s", d.Path(), d.SharedDir())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("New(%q, %q) = %v, want InvalidArgument with %q", tc.stateDir, tc.id, err, tc.wantErr)
			}
		})
	}
}

func TestReadySocket(t *testing.T) {
	if want := VsockSocket + "_" + strconv.Itoa(api.ReadyPort); ReadySocket != want {
		t.Fatalf("ReadySocket %q, want %q", ReadySocket, want)
	}
}

func TestCheckRel(t *testing.T) {
	cases := []struct {
		name, rel string
		ok        bool
	}{
		{name: "plain", rel: "c1/rootfs", ok: true},
		{name: "empty", rel: ""},
		{name: "absolute", rel: "/etc"},
		{name: "dot dot", rel: "c1/../../etc"},
		{name: "dot", rel: "c1/./rootfs"},
		{name: "double slash", rel: "c1//rootfs"},
		{name: "trailing slash", rel: "c1/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkRel(tc.rel); (err == nil) != tc.ok {
				t.Fatalf("checkRel(%q) = %v, want ok=%v", tc.rel, err, tc.ok)
			}
		})
	}
}

// TestCreateRefusesStale: a directory left by a crashed sandbox of the
// same id is refused, naming the command that removes it.
func TestCreateRefusesStale(t *testing.T) {
	d, err := New(t.TempDir()+"/state", "sb1")
	if err != nil {
		t.Fatal(err)
	}
	if err := Create(d); err != nil {
		t.Fatal(err)
	}
	err = Create(d)
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "veil sandbox cleanup sb1") {
		t.Fatalf("second Create: %v, want AlreadyExists naming veil sandbox cleanup", err)
	}
}

func TestHostMadeMountPoint(t *testing.T) {
	d, err := New("/run/veil", "sb1")
	if err != nil {
		t.Fatal(err)
	}
	for mp, want := range map[string]bool{
		"/run/veil/sb1":                     true,
		"/run/veil/sb1/share":               true,
		"/run/veil/sb1/shared":              true,
		"/run/veil/sb1/staging":             true,
		"/run/veil/sb1/staging/c1":          true,
		"/run/veil/sb1/shared/c1/rootfs":    false, // inside what the guest wrote in older layouts
		"/run/veil/sb1/staging/c1/rootfs/x": false,
		"/run/veil/sb1/junk":                false,
		"/run/veil/sb10":                    false,
		"/run/veil/sb1/shared/c1":           false,
	} {
		if got := hostMadeMountPoint(d, mp); got != want {
			t.Errorf("hostMadeMountPoint(%s) = %v, want %v", mp, got, want)
		}
	}
}
