package criimage

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// cacheDir is make setup's cache as the tests see it.
func cacheDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("VEIL_CACHE")
	if d == "" {
		d = "../../.cache"
	}
	if _, err := os.Stat(BusyboxRoot(d)); err != nil {
		t.Skipf("Debian busybox not extracted under %s (run make setup)", BusyboxRoot(d))
	}
	return d
}

func TestAll(t *testing.T) {
	images, err := All(cacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	byRef := map[string]string{}
	for _, img := range images {
		d, err := img.Image.Digest()
		if err != nil {
			t.Fatalf("%s: %v", img.Ref, err)
		}
		if _, dup := byRef[img.Ref]; dup {
			t.Errorf("%s listed twice", img.Ref)
		}
		byRef[img.Ref] = d.String()
	}
	const ct = criTools
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"pause differs from pause 3.9", Pause, "registry.k8s.io/pause:3.9", false},
		{"pause 3.9 same in both registries", "registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9", true},
		{"test images 1 and 2 differ", ct + "test-image-1:latest", ct + "test-image-2:latest", false},
		{"test images 2 and 3 differ", ct + "test-image-2:latest", ct + "test-image-3:latest", false},
		{"tags 1 and 3 same", ct + "test-image-tags:1", ct + "test-image-tags:3", true},
		{"user images differ", ct + "test-image-user-uid:latest", ct + "test-image-user-uid-group:latest", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, okA := byRef[tc.a]
			b, okB := byRef[tc.b]
			if !okA || !okB {
				t.Fatalf("missing: %s=%v %s=%v", tc.a, okA, tc.b, okB)
			}
			if (a == b) != tc.same {
				t.Errorf("%s=%s %s=%s, want same=%v", tc.a, a, tc.b, b, tc.same)
			}
		})
	}
}

func TestBusyboxLayout(t *testing.T) {
	images, err := All(cacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	var files map[string]*tar.Header
	for _, img := range images {
		if img.Ref != Busybox {
			continue
		}
		files = map[string]*tar.Header{}
		tr := tar.NewReader(mutate.Extract(img.Image))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = h
		}
	}
	if files == nil {
		t.Fatalf("%s not built", Busybox)
	}
	tests := []struct {
		name     string
		typeflag byte
	}{
		{"bin/busybox", tar.TypeReg},
		{"bin/sh", tar.TypeLink},
		{"bin/echo", tar.TypeLink},
		{"usr/bin/pgrep", tar.TypeReg},
		{"usr/bin/ipcs", tar.TypeReg},
		{"lib64/ld-linux-x86-64.so.2", tar.TypeSymlink},
		{"lib/x86_64-linux-gnu/libc.so.6", tar.TypeReg},
		{"etc/passwd", tar.TypeReg},
		{"var/run", tar.TypeDir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := files[tc.name]
			if !ok {
				t.Fatalf("%s missing", tc.name)
			}
			if h.Typeflag != tc.typeflag {
				t.Errorf("%s: type %q, want %q", tc.name, h.Typeflag, tc.typeflag)
			}
		})
	}
}
