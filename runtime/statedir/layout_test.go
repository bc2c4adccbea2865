package statedir

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestNew(t *testing.T) {
	cases := []struct {
		name, stateDir, id string
		wantErr            string
	}{
		{name: "cri id", stateDir: "/run/veil/sandboxes", id: strings.Repeat("0123456789abcdef", 4)},
		{name: "longest id that fits the default state dir", stateDir: "/run/veil/sandboxes", id: strings.Repeat("a", 70)},
		{name: "containerd's longest id overflows sun_path", stateDir: "/run/veil/sandboxes", id: strings.Repeat("a", 76), wantErr: "use an id of at most 70 characters"},
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
