package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// readLayout returns the files of an OCI layout tarball by name.
func readLayout(t *testing.T, p string) map[string][]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[hdr.Name] = b
		}
	}
}

func blobOf(t *testing.T, files map[string][]byte, d ocispec.Descriptor) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+d.Digest.Encoded()]
	if !ok {
		t.Fatalf("blob %s missing", d.Digest)
	}
	if digest.FromBytes(b) != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: content does not match its descriptor", d.Digest)
	}
	return b
}

func TestBuildBusybox(t *testing.T) {
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skipf("%s missing (apt-get install busybox-static)", BusyboxPath)
	}
	const ref = "docker.io/library/busybox:veil"
	dir := t.TempDir()
	p, err := BuildBusybox(dir, ref)
	if err != nil {
		t.Fatal(err)
	}
	files := readLayout(t, p)

	var layout ocispec.ImageLayout
	if err := json.Unmarshal(files["oci-layout"], &layout); err != nil || layout.Version != ocispec.ImageLayoutVersion {
		t.Fatalf("oci-layout = %q (%v)", files["oci-layout"], err)
	}
	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(index.Manifests))
	}
	md := index.Manifests[0]
	for _, key := range []string{"io.containerd.image.name", ocispec.AnnotationRefName} {
		if got := md.Annotations[key]; got != ref {
			t.Errorf("annotation %s = %q, want %q", key, got, ref)
		}
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(blobOf(t, files, md), &manifest); err != nil {
		t.Fatal(err)
	}
	var config ocispec.Image
	if err := json.Unmarshal(blobOf(t, files, manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	if len(config.Config.Cmd) != 1 || config.Config.Cmd[0] != "sh" {
		t.Errorf("Cmd = %q, want [sh]", config.Config.Cmd)
	}
	if len(manifest.Layers) != 1 || len(config.RootFS.DiffIDs) != 1 {
		t.Fatalf("want one layer, manifest has %d, config %d", len(manifest.Layers), len(config.RootFS.DiffIDs))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blobOf(t, files, manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	layerTar, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(layerTar); got != config.RootFS.DiffIDs[0] {
		t.Errorf("layer diff ID %s, config says %s", got, config.RootFS.DiffIDs[0])
	}

	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(layerTar))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[hdr.Name] = hdr
	}
	tests := []struct {
		name     string
		typeflag byte
	}{
		{"bin/busybox", tar.TypeReg},
		{"bin/sh", tar.TypeSymlink},
		{"bin/echo", tar.TypeSymlink},
		{"bin/sleep", tar.TypeSymlink},
		{"usr/bin/head", tar.TypeSymlink},
		{"etc/passwd", tar.TypeReg},
		{"etc/group", tar.TypeReg},
		{"tmp/", tar.TypeDir},
		{"proc/", tar.TypeDir},
		{"sys/", tar.TypeDir},
		{"dev/", tar.TypeDir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr, ok := entries[tc.name]
			if !ok {
				t.Fatalf("%s missing from the layer", tc.name)
			}
			if hdr.Typeflag != tc.typeflag {
				t.Errorf("%s type %q, want %q", tc.name, hdr.Typeflag, tc.typeflag)
			}
		})
	}

	t.Run("reproducible", func(t *testing.T) {
		again, err := BuildBusybox(t.TempDir(), ref)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(again)
		if !bytes.Equal(a, b) {
			t.Error("two builds differ")
		}
	})
}

func TestBuildBusyboxEmptyRef(t *testing.T) {
	if _, err := BuildBusybox(t.TempDir(), ""); err == nil {
		t.Fatal("want an error for an empty reference")
	}
}
