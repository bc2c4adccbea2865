package testnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Dir is where `ip netns` keeps its named network namespaces.
const Dir = "/run/netns"

// New creates a named network namespace prefix<random> with lo up.
func New(ctx context.Context, prefix string) (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random netns name: %w", err)
	}
	name := prefix + hex.EncodeToString(b)
	if err := Run(ctx, "ip", "netns", "add", name); err != nil {
		return "", err
	}
	if err := Run(ctx, "ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		if derr := Delete(ctx, name); derr != nil {
			return "", fmt.Errorf("%w (then removing netns %s: %w)", err, name, derr)
		}
		return "", fmt.Errorf("%w (netns %s removed)", err, name)
	}
	return name, nil
}

// Delete removes the named network namespace.
func Delete(ctx context.Context, name string) error {
	return Run(ctx, "ip", "netns", "delete", name)
}

// Path is the bind-mount that pins network namespace name.
func Path(name string) string { return filepath.Join(Dir, name) }

// Run runs a host command, returning its combined output in the error.
func Run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
