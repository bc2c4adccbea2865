package image

import (
	"archive/tar"
	"bytes"
	_ "crypto/sha256" // registers sha256 for go-digest
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blob is one content-addressed file of an OCI layout.
type blob struct {
	mediaType string
	data      []byte
}

func (b blob) descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: b.mediaType,
		Digest:    digest.FromBytes(b.data),
		Size:      int64(len(b.data)),
	}
}

func jsonBlob(mediaType string, v any) (blob, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return blob{}, fmt.Errorf("marshal %s: %w", mediaType, err)
	}
	return blob{mediaType: mediaType, data: data}, nil
}

// writeLayout writes an OCI image layout tarball at path: oci-layout,
// index.json naming the manifest as ref, and the blobs. The manifest's
// config and layers must be among blobs.
func writeLayout(path, ref string, manifest blob, platform ocispec.Platform, blobs ...blob) error {
	desc := manifest.descriptor()
	desc.Platform = &platform
	desc.Annotations = map[string]string{
		"io.containerd.image.name": ref,
		ocispec.AnnotationRefName:  ref,
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{desc},
	})
	if err != nil {
		return fmt.Errorf("marshal index: %w", err)
	}
	layoutFile, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("marshal oci-layout: %w", err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir, Format: tar.FormatPAX})
	}
	if err := add(ocispec.ImageLayoutFile, layoutFile); err != nil {
		return fmt.Errorf("write oci-layout: %w", err)
	}
	if err := add("index.json", index); err != nil {
		return fmt.Errorf("write index.json: %w", err)
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	for _, b := range append([]blob{manifest}, blobs...) {
		if err := add("blobs/sha256/"+b.descriptor().Digest.Encoded(), b.data); err != nil {
			return fmt.Errorf("write blob %s: %w", b.mediaType, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close layout tar: %w", err)
	}
	return writeFileAtomic(path, &buf)
}

// writeFileAtomic writes r to path through a temporary file in the same
// directory, so a reader never sees a partial tarball.
func writeFileAtomic(path string, r io.Reader) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".image-*.tar")
	if err != nil {
		return fmt.Errorf("create image tarball: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename image tarball to %s: %w", path, err)
	}
	return nil
}
