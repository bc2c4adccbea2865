package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// netnsDir is where `ip netns` keeps its named network namespaces.
const netnsDir = "/run/netns"

// newNetNS creates a named network namespace prefix<random> with lo up.
func newNetNS(ctx context.Context, prefix string) (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random netns name: %w", err)
	}
	name := prefix + hex.EncodeToString(b)
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return "", err
	}
	if err := run(ctx, "ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		if derr := deleteNetNS(ctx, name); derr != nil {
			return "", fmt.Errorf("%w (then removing netns %s: %w)", err, name, derr)
		}
		return "", fmt.Errorf("%w (netns %s removed)", err, name)
	}
	return name, nil
}

func deleteNetNS(ctx context.Context, name string) error {
	return run(ctx, "ip", "netns", "delete", name)
}

// netnsPath is the bind-mount that pins network namespace name.
func netnsPath(name string) string { return filepath.Join(netnsDir, name) }

// run runs a host command, returning its combined output in the error.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
