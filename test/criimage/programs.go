package criimage

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// csrc holds the C sources of the images' own programs.
//
//go:embed csrc/*.c
var csrc embed.FS

// program compiles csrc/<name>.c with gcc -static into
// <cacheDir>/criimage/prog/<name>-<source hash> (reused while the source
// is unchanged) and returns the binary's content.
func program(cacheDir, name string) ([]byte, error) {
	src, err := csrc.ReadFile("csrc/" + name + ".c")
	if err != nil {
		return nil, fmt.Errorf("read embedded source %s.c: %w", name, err)
	}
	sum := sha256.Sum256(src)
	dir := filepath.Join(cacheDir, "criimage", "prog")
	bin := filepath.Join(dir, name+"-"+hex.EncodeToString(sum[:8]))
	if b, err := os.ReadFile(bin); err == nil {
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	srcPath := bin + ".c"
	if err := os.WriteFile(srcPath, src, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", srcPath, err)
	}
	defer func() { _ = os.Remove(srcPath) }()
	tmp := bin + ".tmp"
	var stderr bytes.Buffer
	cmd := exec.Command("gcc", "-static", "-Os", "-s", "-o", tmp, srcPath)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gcc -static %s.c (apt-get install gcc libc6-dev, or make setup): %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return nil, fmt.Errorf("rename %s: %w", tmp, err)
	}
	return os.ReadFile(bin)
}
