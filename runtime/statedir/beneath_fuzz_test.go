package statedir

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// beneathTree builds the tree FuzzBeneath resolves paths in: a root with
// directories and files, symlinks that lead out of it, back into it and
// round in circles, and a canary directory beside it that no operation
// may touch.
func beneathTree(f *testing.F) (root, scratch *os.File, canary string) {
	base := f.TempDir()
	canary = filepath.Join(base, "canary")
	rootPath := filepath.Join(base, "root")
	for _, d := range []string{canary, rootPath + "/dir/sub", rootPath + "/scratch"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for _, p := range []string{canary + "/keep", rootPath + "/file", rootPath + "/dir/file"} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"out":       "../canary",
		"abs":       canary,
		"in":        "dir",
		"loop":      "loop",
		"dir/up":    "..",
		"dir/upup":  "../..",
		"scratch/x": "../../canary",
		"proc":      "/proc/self/root",
	} {
		if err := os.Symlink(target, filepath.Join(rootPath, link)); err != nil {
			f.Fatal(err)
		}
	}
	var err error
	if root, err = openRoot(rootPath); err != nil {
		f.Fatal(err)
	}
	if scratch, err = openRoot(rootPath + "/scratch"); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = root.Close(); _ = scratch.Close() })
	return root, scratch, canary
}

// FuzzBeneath resolves arbitrary relative paths with the share's
// beneath-resolution helpers (openBeneath, openDirBeneath, mkdirBeneath,
// createFileBeneath) in a tree of hostile symlinks. None needs root. A
// path is accepted only if checkRel accepts it; what is opened or made is
// exactly root/rel (no symlink followed, nothing above the root); the
// canary beside the root keeps its single entry.
func FuzzBeneath(f *testing.F) {
	root, scratch, canary := beneathTree(f)
	for _, s := range []string{
		"dir", "dir/sub", "file", "dir/file", "in", "in/file", "out", "out/keep", "abs/keep",
		"loop", "dir/up", "dir/up/file", "dir/upup/canary", "scratch/x/keep", "proc/etc",
		"..", "../canary/keep", "dir/../file", "./file", "dir//file", "dir/", "/etc", "",
		"new", "new/child", "x", ".", "a\x00b", strings.Repeat("a", 300), strings.Repeat("d/", 100) + "d",
	} {
		for op := range uint8(4) {
			f.Add(s, op)
		}
	}
	f.Fuzz(func(t *testing.T, rel string, op uint8) {
		var (
			file *os.File
			err  error
			dir  = root
		)
		switch op % 4 {
		case 0:
			file, err = openBeneath(root, rel, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
		case 1:
			file, err = openDirBeneath(root, rel)
		case 2:
			dir = scratch
			file, err = mkdirBeneath(scratch, rel, 0o700)
		case 3:
			dir = scratch
			err = createFileBeneath(scratch, rel, 0o600)
		}
		if ents, rerr := os.ReadDir(canary); rerr != nil || len(ents) != 1 || ents[0].Name() != "keep" {
			t.Fatalf("op %d on %q touched the canary: %v %v", op%4, rel, ents, rerr)
		}
		if err != nil {
			if file != nil {
				t.Fatalf("op %d on %q returned a file with error %v", op%4, rel, err)
			}
			return
		}
		if cerr := checkRel(rel); cerr != nil {
			t.Fatalf("op %d accepted %q, which checkRel refuses: %v", op%4, rel, cerr)
		}
		want := filepath.Join(dir.Name(), rel)
		if file != nil {
			defer func() { _ = file.Close() }()
			got, lerr := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(file.Fd())))
			if lerr != nil {
				t.Fatal(lerr)
			}
			if got != want {
				t.Fatalf("op %d on %q opened %q, want %q", op%4, rel, got, want)
			}
		}
		if dir == scratch {
			if strings.Contains(rel, "/") {
				t.Fatalf("op %d made %q, not a single element", op%4, rel)
			}
			flags := 0
			if op%4 == 2 {
				flags = unix.AT_REMOVEDIR
			}
			if err := unix.Unlinkat(int(scratch.Fd()), rel, flags); err != nil {
				t.Fatalf("remove %q made by op %d: %v", rel, op%4, err)
			}
		}
	})
}
