package statedir

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestOpenRefusesLinks plants links Veil never makes: each is refused,
// naming the link, and nothing is removed through it.
func TestOpenRefusesLinks(t *testing.T) {
	cases := []struct {
		name  string
		plant func(t *testing.T, f poolFixture)
		msg   string
	}{
		{name: "absolute", plant: func(t *testing.T, f poolFixture) { symlink(t, "/etc", f.path("sb1")) }, msg: `symlink to "/etc"`},
		{name: "to the canary", plant: func(t *testing.T, f poolFixture) { symlink(t, f.canary, f.path("sb1")) }, msg: "not to .pool/<pool VM id>"},
		{name: "relative up", plant: func(t *testing.T, f poolFixture) { symlink(t, "../x", f.path("sb1")) }, msg: `"../x"`},
		{name: "up through .pool", plant: func(t *testing.T, f poolFixture) { symlink(t, ".pool/../../canary", f.path("sb1")) }, msg: "not to .pool/<pool VM id>"},
		{name: "invalid vmid", plant: func(t *testing.T, f poolFixture) { symlink(t, ".pool/bad id", f.path("sb1")) }, msg: `".pool/bad id"`},
		{name: "trailing slash", plant: func(t *testing.T, f poolFixture) { symlink(t, ".pool/vm1/", f.path("sb1")) }, msg: "not to .pool/<pool VM id>"},
		{name: "double slash", plant: func(t *testing.T, f poolFixture) { symlink(t, ".pool//vm1", f.path("sb1")) }, msg: "not to .pool/<pool VM id>"},
		{name: "dot slash", plant: func(t *testing.T, f poolFixture) { symlink(t, "./.pool/vm1", f.path("sb1")) }, msg: "not to .pool/<pool VM id>"},
		{name: "to a file", plant: func(t *testing.T, f poolFixture) {
			writeFiles(t, f.path(".pool/vm2"))
			symlink(t, ".pool/vm2", f.path("sb1"))
		}, msg: "which is a regular file, not a directory"},
		{name: "to a pool entry that is a link", plant: func(t *testing.T, f poolFixture) {
			symlink(t, f.canary, f.path(".pool/vm2"))
			symlink(t, ".pool/vm2", f.path("sb1"))
		}, msg: "which is a symlink, not a directory"},
		{name: ".pool is a link", plant: func(t *testing.T, f poolFixture) {
			if err := os.Rename(f.path(".pool"), f.path("pool-was")); err != nil {
				t.Fatal(err)
			}
			symlink(t, f.canary, f.path(".pool"))
			symlink(t, ".pool/sub", f.path("sb1"))
		}, msg: ".pool is a symlink, not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newPoolFixture(t)
			tc.plant(t, f)
			d, err := Open(f.stateDir, "sb1")
			if err == nil {
				t.Fatalf("Open followed the link: %+v", d)
			}
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), f.path("sb1")) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Open: %v, want FailedPrecondition naming %s with %q", err, f.path("sb1"), tc.msg)
			}
			// A caller that takes the id's path as it is (New) removes the
			// link itself, nothing through it.
			plain, err := New(f.stateDir, "sb1")
			if err != nil {
				t.Fatal(err)
			}
			if err := Remove(context.Background(), plain); err != nil {
				t.Fatal(err)
			}
			gone(t, f.path("sb1"))
			f.canaryIntact(t)
		})
	}
}

// TestRemovePlantedPoolEntry: a pool entry planted as a link to outside
// the state dir, claimed and linked: Remove unlinks the entry and the
// link, and deletes nothing they point at; with .pool itself a link it
// refuses to start.
func TestRemovePlantedPoolEntry(t *testing.T) {
	cases := []struct {
		name    string
		plant   func(t *testing.T, f poolFixture)
		wantErr bool
		gone    []string
	}{
		{name: "pool entry links to the canary", plant: func(t *testing.T, f poolFixture) {
			symlink(t, f.canary, f.path(".pool/sub"))
		}, gone: []string{"sb1", ".pool/sub"}},
		{name: ".pool links to the canary", plant: func(t *testing.T, f poolFixture) {
			if err := os.Rename(f.path(".pool"), f.path("pool-was")); err != nil {
				t.Fatal(err)
			}
			symlink(t, f.canary, f.path(".pool"))
		}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newPoolFixture(t)
			tc.plant(t, f)
			// The canary's subdirectory "sub", seen as pool VM "sub".
			sub, err := NewPool(f.stateDir, "sub")
			if err != nil {
				t.Fatal(err)
			}
			d, err := sub.Claimed("sb1")
			if err != nil {
				t.Fatal(err)
			}
			symlink(t, ".pool/sub", f.path("sb1"))
			if _, err := Open(f.stateDir, "sb1"); err == nil {
				t.Fatal("Open followed a planted pool entry")
			}
			err = Remove(context.Background(), d)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Remove: %v, want error %v", err, tc.wantErr)
			}
			for _, p := range tc.gone {
				gone(t, f.path(p))
			}
			f.canaryIntact(t)
		})
	}
}
