package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

const modulePath = "github.com/veil-runtime/veil"

// RepoRoot returns the root of the Veil checkout: the nearest directory
// above the working directory (or, failing that, above this source file)
// whose go.mod declares Veil's module. It returns "" when there is none.
func RepoRoot() string {
	if wd, err := os.Getwd(); err == nil {
		if root := findModuleRoot(wd); root != "" {
			return root
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		return findModuleRoot(filepath.Dir(file))
	}
	return ""
}

func findModuleRoot(dir string) string {
	for {
		if isVeilModule(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isVeilModule(goMod string) bool {
	f, err := os.Open(goMod)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && fields[0] == "module" {
			return fields[1] == modulePath
		}
	}
	return false
}

// CacheDir is where `make setup` puts what it fetched: $VEIL_CACHE, else
// <repo>/.cache.
func CacheDir() string {
	if d := os.Getenv("VEIL_CACHE"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), ".cache")
}

// OutputDir is where `make build` and `make guest` put their outputs:
// $VEIL_OUTPUT, else <repo>/_output.
func OutputDir() string {
	if d := os.Getenv("VEIL_OUTPUT"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "_output")
}

// ConfigPath is the Veil config `make setup` writes for this checkout.
func ConfigPath() string {
	return filepath.Join(CacheDir(), "veil-config.toml")
}

// BinDirs are the directories searched before $PATH for the binaries the
// tests run: <output>/bin (make build) and <cache>/bin (make setup).
func BinDirs() []string {
	return []string{filepath.Join(OutputDir(), "bin"), filepath.Join(CacheDir(), "bin")}
}

// LookPath finds the executable name in dirs first, then on $PATH.
func LookPath(name string, dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in %s or PATH: run 'make setup': %w", name, strings.Join(dirs, ", "), err)
	}
	return p, nil
}
