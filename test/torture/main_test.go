package torture

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/veil-runtime/veil/test/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := results.write(filepath.Join(harness.OutputDir(), "torture", "results.md")); err != nil {
		fmt.Fprintf(os.Stderr, "torture: write results: %v\n", err)
	}
	os.Exit(code)
}

// row is one case's line in the results table.
type row struct {
	Case    string
	Outcome string
	// Recover is the time from the fault to the state the case waits
	// for (every task exited, the call returned, ...).
	Recover string
	// Census is the leak census after the case: counts of what it
	// counted, and the leaks (none when clean).
	Census string
}

type table struct {
	mu   sync.Mutex
	rows []row
}

var results table

// record adds a case's row; the test's own pass/fail is its verdict.
func record(t testing.TB, r row) {
	t.Helper()
	if r.Case == "" {
		r.Case = t.Name()
	}
	t.Logf("TORTURE | %s | %s | %s | %s", r.Case, r.Outcome, r.Recover, r.Census)
	results.mu.Lock()
	defer results.mu.Unlock()
	results.rows = append(results.rows, r)
}

func (tb *table) write(path string) error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.rows) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	rows := append([]row(nil), tb.rows...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Case < rows[j].Case })
	var b strings.Builder
	fmt.Fprintf(&b, "# Torture results (%s counts)\n\n| case | outcome | recover | leak census |\n|---|---|---|---|\n", countsName())
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Case, r.Outcome, r.Recover, r.Census)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
