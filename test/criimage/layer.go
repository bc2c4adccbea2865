package criimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every file's mtime and every image's creation time, so a given
// input always gives the same digests.
var epoch = time.Unix(1700000000, 0).UTC()

// layerBuilder writes a layer tarball: entries in call order, parent
// directories added on first use.
type layerBuilder struct {
	buf  bytes.Buffer
	tw   *tar.Writer
	dirs map[string]bool
	err  error
}

func newLayer() *layerBuilder {
	l := &layerBuilder{dirs: map[string]bool{}}
	l.tw = tar.NewWriter(&l.buf)
	return l
}

func (l *layerBuilder) header(h *tar.Header) {
	if l.err != nil {
		return
	}
	h.ModTime, h.Format = epoch, tar.FormatPAX
	l.err = l.tw.WriteHeader(h)
}

// dir adds directory name (no leading slash) and its missing parents.
func (l *layerBuilder) dir(name string, mode int64) {
	if name == "." || name == "" || l.dirs[name] {
		return
	}
	l.dir(path.Dir(name), 0o755)
	l.dirs[name] = true
	l.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode})
}

// file adds a regular file owned by root.
func (l *layerBuilder) file(name string, mode int64, data []byte) {
	l.dir(path.Dir(name), 0o755)
	l.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))})
	if l.err == nil {
		_, l.err = l.tw.Write(data)
	}
}

// symlink adds name pointing at target.
func (l *layerBuilder) symlink(name, target string) {
	l.dir(path.Dir(name), 0o755)
	l.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
}

// hardlink adds name as a hard link to the earlier entry target, whose
// mode it repeats (unpackers apply a link entry's mode to the shared
// inode).
func (l *layerBuilder) hardlink(name, target string, mode int64) {
	l.dir(path.Dir(name), 0o755)
	l.header(&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: mode})
}

// layer finishes the tarball and returns it as a gzip OCI layer.
func (l *layerBuilder) layer() (v1.Layer, error) {
	if l.err == nil {
		l.err = l.tw.Close()
	}
	if l.err != nil {
		return nil, fmt.Errorf("write layer tarball: %w", l.err)
	}
	data := l.buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed), tarball.WithMediaType(types.OCILayer))
}
