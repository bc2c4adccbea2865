package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxPath is Debian's static busybox (package busybox-static).
const BusyboxPath = "/bin/busybox"

// epoch is every file's mtime, so that the same busybox always gives the
// same image digest.
var epoch = time.Unix(1700000000, 0).UTC()

const (
	passwd = "root:x:0:0:root:/root:/bin/sh\n" +
		"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group = "root:x:0:\n" +
		"daemon:x:1:\n" +
		"nogroup:x:65534:\n"
)

// BuildBusybox writes an OCI image layout tarball named ref into dir and
// returns its path. The image holds Debian's static /bin/busybox with
// every applet linked where `busybox --list-full` puts it, /etc/passwd,
// /etc/group and the usual empty directories; its Cmd is ["sh"]. The
// result is byte-for-byte reproducible for a given busybox binary.
func BuildBusybox(dir, ref string) (string, error) {
	if ref == "" {
		return "", errors.New("build busybox image: empty image reference")
	}
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return "", fmt.Errorf("read %s (apt-get install busybox-static): %w", BusyboxPath, err)
	}
	if err := checkStatic(BusyboxPath); err != nil {
		return "", err
	}
	applets, err := ListApplets(BusyboxPath)
	if err != nil {
		return "", err
	}
	layerTar, err := busyboxLayer(bb, applets)
	if err != nil {
		return "", fmt.Errorf("build busybox layer: %w", err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(layerTar); err != nil {
		return "", fmt.Errorf("gzip layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("gzip layer: %w", err)
	}
	layer := blob{mediaType: ocispec.MediaTypeImageLayerGzip, data: gz.Bytes()}

	platform := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	created := epoch
	config, err := jsonBlob(ocispec.MediaTypeImageConfig, ocispec.Image{
		Created:  &created,
		Platform: platform,
		Config: ocispec.ImageConfig{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd:        []string{"sh"},
			WorkingDir: "/",
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layerTar)}},
		History: []ocispec.History{{
			Created:   &created,
			CreatedBy: "veil test/image: Debian busybox-static",
		}},
	})
	if err != nil {
		return "", err
	}
	manifest, err := jsonBlob(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config.descriptor(),
		Layers:    []ocispec.Descriptor{layer.descriptor()},
	})
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "busybox-"+sanitize(ref)+".oci.tar")
	if err := writeLayout(out, ref, manifest, platform, config, layer); err != nil {
		return "", fmt.Errorf("write image %s to %s: %w", ref, out, err)
	}
	return out, nil
}

// checkStatic fails when the busybox at p needs a dynamic loader, which a
// busybox-only image does not have.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s is not an ELF binary: %w", p, err)
	}
	defer func() { _ = f.Close() }()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: install Debian's busybox-static (apt-get install busybox-static)", p)
		}
	}
	return nil
}

// ListApplets returns the applet paths (relative, e.g. "usr/bin/head") of
// the busybox at p, sorted.
func ListApplets(p string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(p, "--list-full")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w: %s", p, err, strings.TrimSpace(stderr.String()))
	}
	var applets []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.Trim(strings.TrimSpace(l), "/")
		if l == "" || l == "bin/busybox" || strings.Contains(l, "..") {
			continue
		}
		applets = append(applets, l)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s --list-full listed no applets", p)
	}
	sort.Strings(applets)
	return applets, nil
}

// busyboxLayer returns the uncompressed layer tarball.
func busyboxLayer(bb []byte, applets []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mkdir := func(name string, mode int64) error { return mkdirAll(tw, dirs, name, mode) }
	for _, d := range []struct {
		name string
		mode int64
	}{
		{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"proc", 0o555}, {"root", 0o700},
		{"run", 0o755}, {"sbin", 0o755}, {"sys", 0o555}, {"tmp", 0o1777}, {"usr/bin", 0o755},
		{"usr/sbin", 0o755}, {"var/tmp", 0o1777},
	} {
		if err := mkdir(d.name, d.mode); err != nil {
			return nil, err
		}
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := file("bin/busybox", 0o755, bb); err != nil {
		return nil, err
	}
	if err := file("etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, err
	}
	if err := file("etc/group", 0o644, []byte(group)); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if err := mkdir(path.Dir(a), 0o755); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: a, Linkname: "/bin/busybox", Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// mkdirAll writes a directory entry for name, and 0755 entries for any of
// its parents not written yet (dirs records the written ones).
func mkdirAll(tw *tar.Writer, dirs map[string]bool, name string, mode int64) error {
	if dirs[name] {
		return nil
	}
	if parent := path.Dir(name); parent != "." {
		if err := mkdirAll(tw, dirs, parent, 0o755); err != nil {
			return err
		}
	}
	dirs[name] = true
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
}

// sanitize turns an image reference into a file name fragment.
func sanitize(ref string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, ref)
}
