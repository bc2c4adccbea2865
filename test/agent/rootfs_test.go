package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// busyboxRootfs builds a minimal root filesystem from the host's
// busybox-static (Debian's busybox-static package) in a temp dir.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	bb := "/bin/busybox"
	if out, err := exec.Command("file", "-L", bb).Output(); err == nil && !containsStatic(string(out)) {
		t.Fatalf("%s is not static (%s): apt-get install busybox-static", bb, out)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatalf("busybox: %v (apt-get install busybox-static)", err)
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "proc", "dev", "sys", "etc", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "echo", "cat", "ls", "sleep", "hostname", "true"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func containsStatic(fileOutput string) bool {
	return strings.Contains(fileOutput, "statically linked") || strings.Contains(fileOutput, "static-pie linked")
}
