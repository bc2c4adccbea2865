package guest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// ModulesList is the file naming the kernel modules to load, in order.
const ModulesList = "/etc/veil/modules"

// Busybox is the initramfs's static busybox (agent/initramfs/build.sh),
// for `veil sandbox exec` and the warm-up container's shell.
const Busybox = "/bin/busybox"

// ParseModuleList reads a module list: one path relative to
// /lib/modules/<release>/ per line; blank lines and lines starting with #
// are skipped. Absolute paths and paths leaving the directory are refused.
func ParseModuleList(r io.Reader) ([]string, error) {
	var mods []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		clean := filepath.Clean(line)
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return nil, fmt.Errorf("module list line %d: %q is not a path inside the modules directory", n, line)
		}
		mods = append(mods, clean)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read module list: %w", err)
	}
	return mods, nil
}

// moduleFlags returns the finit_module flags for a module file: compressed
// files are decompressed by the kernel.
func moduleFlags(name string) int {
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		if strings.HasSuffix(name, ext) {
			return unix.MODULE_INIT_COMPRESSED_FILE
		}
	}
	return 0
}

// LoadModules loads the modules listed in list from dir in order. A module
// already loaded (or built in) is fine; every other failure is logged and
// returned together after trying the rest.
func LoadModules(ctx context.Context, list, dir string) error {
	f, err := os.Open(list)
	if errors.Is(err, os.ErrNotExist) {
		log.G(ctx).Infof("no module list %s", list)
		return nil
	}
	if err != nil {
		return fmt.Errorf("open module list: %w", err)
	}
	defer func() { _ = f.Close() }()
	mods, err := ParseModuleList(f)
	if err != nil {
		return fmt.Errorf("%s: %w", list, err)
	}
	var errs []error
	for _, m := range mods {
		if err := loadModule(filepath.Join(dir, m)); err != nil {
			log.G(ctx).WithError(err).Error("load module")
			errs = append(errs, err)
		}
	}
	log.G(ctx).Infof("loaded %d modules (%d failed)", len(mods)-len(errs), len(errs))
	return errors.Join(errs...)
}

func loadModule(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open module %s: %w", path, err)
	}
	defer func() { _ = unix.Close(fd) }()
	if err := unix.FinitModule(fd, "", moduleFlags(path)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// KernelRelease returns uname -r.
func KernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}
