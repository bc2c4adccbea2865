package criimage

import (
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	ociimage "github.com/veil-runtime/veil/test/image"
)

// hostTools are host binaries the images carry beside busybox, whose
// Debian build lacks these applets the tests run.
var hostTools = []string{"/usr/bin/pgrep", "/usr/bin/ipcs"}

// libDirs are where the host's shared libraries live (Debian multiarch),
// searched in order; the image keeps them in the first.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}

const (
	passwd = "root:x:0:0:root:/root:/bin/sh\n" +
		"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n" +
		"www-data:x:33:33:www-data:/var/www:/bin/false\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group = "root:x:0:\n" +
		"daemon:x:1:\n" +
		"www-data:x:33:\n" +
		"users:x:100:\n" +
		"nogroup:x:65534:\n"
)

// BusyboxRoot is where `make setup` extracts Debian's busybox package.
func BusyboxRoot(cacheDir string) string {
	return filepath.Join(cacheDir, "criimage", "busybox")
}

// baseLayer returns the layer every non-pause image starts from: Debian's
// dynamic busybox with each applet hard-linked where `busybox --list-full`
// puts it, pgrep and ipcs, the shared libraries they all need from the
// host, /etc/passwd and /etc/group and the usual directories.
func baseLayer(cacheDir string) (v1.Layer, error) {
	bbPath := filepath.Join(BusyboxRoot(cacheDir), "bin", "busybox")
	bb, err := os.ReadFile(bbPath)
	if err != nil {
		return nil, fmt.Errorf("read Debian's busybox (run make setup): %w", err)
	}
	applets, err := ociimage.ListApplets(bbPath)
	if err != nil {
		return nil, err
	}
	interp, libs, err := sharedLibs(append([]string{bbPath}, hostTools...))
	if err != nil {
		return nil, err
	}

	l := newLayer()
	for _, d := range []struct {
		name string
		mode int64
	}{
		{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"home", 0o755}, {"proc", 0o555},
		{"root", 0o700}, {"run", 0o755}, {"sbin", 0o755}, {"sys", 0o555}, {"tmp", 0o1777},
		{"usr/bin", 0o755}, {"usr/sbin", 0o755}, {"var/run", 0o755}, {"var/tmp", 0o1777},
		{"var/www", 0o755},
	} {
		l.dir(d.name, d.mode)
	}
	l.file("etc/passwd", 0o644, []byte(passwd))
	l.file("etc/group", 0o644, []byte(group))
	l.file("etc/hostname", 0o644, []byte("busybox\n"))
	l.file("bin/busybox", 0o755, bb)
	for _, a := range applets {
		l.hardlink(a, "bin/busybox", 0o755)
	}
	for _, t := range hostTools {
		b, err := os.ReadFile(t)
		if err != nil {
			return nil, fmt.Errorf("read %s (apt-get install procps util-linux): %w", t, err)
		}
		l.file(strings.TrimPrefix(t, "/"), 0o755, b)
	}
	names := make([]string, 0, len(libs))
	for n := range libs {
		names = append(names, n)
	}
	sort.Strings(names)
	libDir := strings.TrimPrefix(libDirs[0], "/")
	for _, n := range names {
		b, err := os.ReadFile(libs[n])
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", libs[n], err)
		}
		l.file(path.Join(libDir, n), 0o755, b)
	}
	// The loader lives with the libraries; the path the binaries name
	// (/lib64/ld-linux-x86-64.so.2) links to it.
	if interp != "" && path.Dir(interp) != libDirs[0] {
		l.symlink(strings.TrimPrefix(interp, "/"), path.Join(libDirs[0], path.Base(interp)))
	}
	return l.layer()
}

// sharedLibs resolves the dynamic loader and the transitive DT_NEEDED
// libraries of bins on the host: it returns the loader's path and a map
// from library name (as the binaries name it) to the host file.
func sharedLibs(bins []string) (string, map[string]string, error) {
	libs := map[string]string{}
	var interp string
	queue := append([]string(nil), bins...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		f, err := elf.Open(p)
		if err != nil {
			return "", nil, fmt.Errorf("read ELF %s: %w", p, err)
		}
		needed, err := f.ImportedLibraries()
		if err == nil && interp == "" {
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					b := make([]byte, prog.Filesz)
					if _, rerr := prog.ReadAt(b, 0); rerr == nil {
						interp = strings.TrimRight(string(b), "\x00")
					}
				}
			}
		}
		_ = f.Close()
		if err != nil {
			return "", nil, fmt.Errorf("list libraries of %s: %w", p, err)
		}
		for _, n := range needed {
			if _, ok := libs[n]; ok {
				continue
			}
			host, err := findLib(n)
			if err != nil {
				return "", nil, fmt.Errorf("%s needs %s: %w", p, n, err)
			}
			libs[n] = host
			queue = append(queue, host)
		}
	}
	if interp != "" {
		host, err := filepath.EvalSymlinks(interp)
		if err != nil {
			return "", nil, fmt.Errorf("dynamic loader %s: %w", interp, err)
		}
		libs[path.Base(interp)] = host
	}
	return interp, libs, nil
}

// findLib returns the real file behind library name in libDirs.
func findLib(name string) (string, error) {
	for _, d := range libDirs {
		if p, err := filepath.EvalSymlinks(filepath.Join(d, name)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found in %s", strings.Join(libDirs, ", "))
}
