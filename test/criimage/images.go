package criimage

import (
	"fmt"
	"maps"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Names of the images Veil's own CRI tests use.
const (
	// Pause is the pod sandbox image containerd's CRI is pinned to.
	Pause = "registry.k8s.io/pause:3.10.2"
	// Busybox is critest's default container image (sh, the usual applets,
	// pgrep, ipcs).
	Busybox = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	// Nginx answers HTTP 200 on port 80 and writes /var/run/nginx.pid.
	Nginx = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	// VsockProbe is busybox with /usr/local/bin/vsockprobe, which tries
	// socket(AF_VSOCK, ...) (csrc/vsockprobe.c).
	VsockProbe = "registry.k8s.io/e2e-test-images/veil-vsockprobe:1.0"
)

// Registries are the registry hosts the images are named under; a test
// registry must mirror all of them.
var Registries = []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io"}

// Image is one image under one name.
type Image struct {
	Ref   string
	Image v1.Image
}

// criTools is the prefix of the cri-tools test images.
const criTools = "gcr.io/k8s-staging-cri-tools/"

const envPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// All builds every image critest v1.37 and Veil's CRI tests pull, named as
// they expect. cacheDir is `make setup`'s cache (busybox, compiled
// programs). Only critest's image pinned by an upstream digest
// (test-image-digest@sha256:...) cannot be rebuilt; it is pushed by tag.
func All(cacheDir string) ([]Image, error) {
	base, err := baseLayer(cacheDir)
	if err != nil {
		return nil, err
	}
	prog := map[string][]byte{}
	for _, name := range []string{"pause", "webserver", "nonewprivs", "vsockprobe"} {
		if prog[name], err = program(cacheDir, name); err != nil {
			return nil, err
		}
	}
	var out []Image
	add := func(img v1.Image, refs ...string) {
		for _, r := range refs {
			out = append(out, Image{Ref: r, Image: img})
		}
	}
	var errs []error
	build := func(cfg v1.Config, files map[string]file, withBase bool) v1.Image {
		img, err := image(cfg, files, base, withBase)
		if err != nil {
			errs = append(errs, err)
		}
		return img
	}
	sh := v1.Config{Env: []string{envPath}, Cmd: []string{"sh"}, WorkingDir: "/"}
	withLabel := func(c v1.Config, v string) v1.Config {
		c.Labels = map[string]string{"io.veil.test-image": v}
		return c
	}

	pause := func(version string) v1.Image {
		return build(v1.Config{Env: []string{envPath}, Entrypoint: []string{"/pause"}, User: "65535:65535", WorkingDir: "/",
			Labels: map[string]string{"io.veil.test-image": "pause-" + version}},
			map[string]file{"pause": {0o755, prog["pause"]}}, false)
	}
	add(pause("3.10.2"), Pause)
	add(pause("3.9"), "registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9")
	add(build(sh, nil, true), Busybox, "docker.io/library/busybox:latest", "docker.io/library/busybox:1.37.0")

	web := func(bin string, port string, cmd ...string) v1.Image {
		c := sh
		c.Cmd = append([]string{"/" + bin, "-p", port}, cmd...)
		c.ExposedPorts = map[string]struct{}{port + "/tcp": {}}
		return build(c, map[string]file{bin: {0o755, prog["webserver"]}}, true)
	}
	add(web("usr/sbin/nginx", "80", "-P", "/var/run/nginx.pid", "master process"), Nginx)
	add(web("usr/sbin/nginx", "12003", "-P", "/var/run/nginx.pid", "master process"), criTools+"hostnet-nginx-amd64")
	add(web("usr/local/apache2/bin/httpd", "80"), "registry.k8s.io/e2e-test-images/httpd:2.4.39-4")
	nnp := sh
	nnp.Cmd = []string{"/usr/local/bin/nnp"}
	add(build(nnp, map[string]file{"usr/local/bin/nnp": {0o4755, prog["nonewprivs"]}}, true),
		"registry.k8s.io/e2e-test-images/nonewprivs:1.3")
	add(build(sh, map[string]file{"usr/local/bin/vsockprobe": {0o755, prog["vsockprobe"]}}, true), VsockProbe)

	// cri-tools' image-test: busybox plus a file named after the image.
	for _, n := range []string{"test-image-1", "test-image-2", "test-image-3", "test-image-latest", "test-image-digest"} {
		add(build(sh, map[string]file{n: {0o644, []byte(n + "\n")}}, true), criTools+n+":latest")
	}
	add(build(sh, map[string]file{"test-image-tags": {0o644, []byte("test-image-tags\n")}}, true),
		criTools+"test-image-tags:1", criTools+"test-image-tags:2", criTools+"test-image-tags:3")
	add(build(sh, map[string]file{"test-image-tag": {0o644, []byte("test-image-tag\n")}}, true),
		criTools+"test-image-tag:test", criTools+"test-image-tag:all")
	// cri-tools' image-user: busybox with USER set.
	for n, user := range map[string]string{
		"test-image-user-uid":            "1002",
		"test-image-user-username":       "www-data",
		"test-image-user-uid-group":      "1003:1004",
		"test-image-user-username-group": "www-data:1004",
	} {
		c := withLabel(sh, n)
		c.User = user
		add(build(c, nil, true), criTools+n+":latest")
	}
	// cri-tools' image-predefined-group: user 1000 in group 50000.
	pg := withLabel(sh, "test-image-predefined-group")
	pg.User = "1000"
	add(build(pg, map[string]file{
		"etc/passwd": {0o644, []byte(passwd + "default-user:x:1000:1000::/home/default-user:/bin/sh\n")},
		"etc/group":  {0o644, []byte(group + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")},
	}, true), criTools+"test-image-predefined-group:latest")

	if len(errs) > 0 {
		return nil, fmt.Errorf("build CRI test images: %w", errs[0])
	}
	return out, nil
}

// file is one file an image adds on top of its base.
type file struct {
	mode int64
	data []byte
}

// image assembles an OCI image for linux/amd64: the base layer when
// withBase, then one layer holding files (when any), and config cfg.
func image(cfg v1.Config, files map[string]file, base v1.Layer, withBase bool) (v1.Image, error) {
	var layers []v1.Layer
	if withBase {
		layers = append(layers, base)
	}
	if len(files) > 0 {
		l := newLayer()
		for _, name := range sortedKeys(files) {
			l.file(name, files[name].mode, files[name].data)
		}
		top, err := l.layer()
		if err != nil {
			return nil, err
		}
		layers = append(layers, top)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config = cfg
	cf.History = nil
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

func sortedKeys(m map[string]file) []string {
	return slices.Sorted(maps.Keys(m))
}
