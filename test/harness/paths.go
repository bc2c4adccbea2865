package harness

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/runtime/statedir"
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

// Skip skips t with a one-line reason unless VEIL_INTEGRATION=1. With
// VEIL_INTEGRATION=1 the test must run, so a missing prerequisite (root)
// fails it instead.
func Skip(t testing.TB) {
	t.Helper()
	if os.Getenv("VEIL_INTEGRATION") != "1" {
		t.Skip("integration test: set VEIL_INTEGRATION=1 and run as root (make test)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("VEIL_INTEGRATION=1 but not running as root: integration tests need root")
	}
}

// HelperPid reads the pid file of helper name (qemu, virtiofsd, ...) in
// sandbox id's directory under stateDir, or fails t.
func HelperPid(t testing.TB, stateDir, id, name string) int {
	t.Helper()
	b, err := os.ReadFile(statedir.HelperPidFile(filepath.Join(stateDir, id), name))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
