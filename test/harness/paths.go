package harness

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/integration"
)

// RepoRoot returns the root of the Veil checkout (see integration.RepoRoot).
func RepoRoot() string { return integration.RepoRoot() }

// CacheDir is where `make setup` puts what it fetched (see
// integration.CacheDir).
func CacheDir() string { return integration.CacheDir() }

// OutputDir is where `make build` and `make guest` put their outputs (see
// integration.OutputDir).
func OutputDir() string { return integration.OutputDir() }

// ConfigPath is the Veil config `make setup` writes for this checkout.
func ConfigPath() string { return integration.ConfigPath() }

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
