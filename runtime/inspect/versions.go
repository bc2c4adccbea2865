package inspect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor/registry"
	"github.com/veil-runtime/veil/runtime/version"
)

// Versions are the versions of what a sandbox of this host would run.
type Versions struct {
	Veil          string `json:"veil"`
	AgentProtocol uint32 `json:"agent_protocol"`
	// Hypervisor is the resolved hypervisor's name and its --version
	// line, or why it could not be read.
	Hypervisor        string `json:"hypervisor"`
	HypervisorVersion string `json:"hypervisor_version"`
	// GuestKernel is the Linux version banner found in the configured
	// guest kernel, or why it could not be read.
	GuestKernel string `json:"guest_kernel"`
}

// ReadVersions gathers the versions for cfg: Veil's own, the agent
// protocol's, the hypervisor binary's and the guest kernel's.
func ReadVersions(ctx context.Context, cfg *config.Config) Versions {
	v := Versions{Veil: version.Version, AgentProtocol: api.APIVersion}
	if e, _, err := registry.Resolve(cfg); err != nil {
		v.Hypervisor, v.HypervisorVersion = "unknown", "unknown: "+err.Error()
	} else {
		v.Hypervisor = e.Name
		v.HypervisorVersion = binaryVersion(ctx, e.BinaryPath(cfg))
	}
	rel, err := KernelRelease(cfg.Guest.Kernel)
	if err != nil {
		v.GuestKernel = "unknown: " + err.Error()
	} else {
		v.GuestKernel = rel
	}
	return v
}

// binaryVersion runs `bin --version` and returns its first line.
func binaryVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return fmt.Sprintf("unknown: %s --version: %v", bin, err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// kernelBanner starts the version string every Linux image carries.
var kernelBanner = []byte("Linux version ")

// KernelRelease returns the release ("6.1.0-veil") from the version
// banner inside an uncompressed kernel image such as a vmlinux.
func KernelRelease(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	r := bufio.NewReaderSize(f, 1<<20)
	// Scan with an overlap so a banner split across reads is found.
	var carry []byte
	buf := make([]byte, 1<<20)
	for {
		n, err := r.Read(buf)
		chunk := append(carry, buf[:n]...)
		for off := 0; ; {
			i := bytes.Index(chunk[off:], kernelBanner)
			if i < 0 {
				break
			}
			rest := chunk[off+i+len(kernelBanner):]
			if end := bytes.IndexByte(rest, ' '); end > 0 && isRelease(rest[:end]) {
				return string(rest[:end]), nil
			}
			off += i + 1
		}
		if keep := 256; len(chunk) > keep {
			carry = append(carry[:0], chunk[len(chunk)-keep:]...)
		} else {
			carry = append(carry[:0], chunk...)
		}
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s: no Linux version banner (not an uncompressed kernel?)", path)
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
	}
}

// isRelease accepts what a kernel release looks like ("6.1.0-56-cloud-amd64")
// and rejects format strings such as "%s".
func isRelease(b []byte) bool {
	if len(b) == 0 || len(b) > 64 || b[0] < '0' || b[0] > '9' {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' || c == '%' {
			return false
		}
	}
	return true
}
