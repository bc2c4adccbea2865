package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/veil-runtime/veil/runtime/hypervisor/registry"

	"google.golang.org/protobuf/proto"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/network"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// networkTimeout bounds each network step: attaching the pod's namespace,
// and the guest's SetupNetwork (which waits for the NICs to appear).
const networkTimeout = 15 * time.Second

// attachNetwork records netnsPath in the sandbox directory (so that
// Cleanup finds it after a crash) and attaches the pod's interfaces to
// taps.
func (s *Sandbox) attachNetwork(ctx context.Context, netnsPath string) error {
	if err := os.WriteFile(s.dir.File(statedir.NetNSFile), []byte(netnsPath+"\n"), 0o600); err != nil {
		return fmt.Errorf("record netns: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	// A jailed VMM that opens its taps by name needs them to be its own.
	var owner uint32
	if s.vmmOpensEndpoints() {
		owner = s.uid()
	}
	e, err := network.AttachOwned(actx, netnsPath, owner)
	if err != nil {
		return err
	}
	s.net = e
	return nil
}

// nics are the VM's network devices.
func (s *Sandbox) nics(taps []*os.File) []hypervisor.NIC {
	if s.net == nil {
		return nil
	}
	var out []hypervisor.NIC
	for i, n := range s.net.NICs {
		nic := hypervisor.NIC{Tap: n.Tap, MAC: n.MAC}
		if i < len(taps) {
			nic.File = taps[i]
		}
		out = append(out, nic)
	}
	return out
}

// openTaps opens the pod's taps for a VMM that takes file descriptors
// (QEMU); a VMM that opens them by name gets none.
func (s *Sandbox) openTaps(ctx context.Context) ([]*os.File, error) {
	if s.net == nil || s.vmmOpensEndpoints() {
		return nil, nil
	}
	return s.net.OpenTaps(ctx)
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

func (s *Sandbox) setupGuestNetwork(ctx context.Context, dns *api.DNS) error {
	req := &api.SetupNetworkRequest{}
	if s.net != nil {
		req = proto.Clone(s.net.Request).(*api.SetupNetworkRequest)
	}
	if len(dns.GetServers()) > 0 {
		req.Dns = dns
	}
	if len(req.Interfaces) == 0 && req.Dns == nil {
		return nil
	}
	nctx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	if _, err := s.agent.SetupNetwork(nctx, req); err != nil {
		var names []string
		for _, i := range req.Interfaces {
			names = append(names, i.Name+" "+i.Mac)
		}
		return fmt.Errorf("interfaces [%s]: %w", strings.Join(names, ", "), err)
	}
	return nil
}

// cleanupNetwork removes the taps a crashed runtime left in the network
// namespace recorded in dir. No record is not an error.
func cleanupNetwork(ctx context.Context, dir statedir.Dir) error {
	b, err := os.ReadFile(dir.File(statedir.NetNSFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	path := strings.TrimSpace(string(b))
	if path == "" {
		return nil
	}
	return network.Cleanup(ctx, path)
}

// vmmOpensEndpoints reports a VMM that opens the pod's taps by name
// inside the pod's network namespace, and virtiofsd's socket by path
// (Cloud Hypervisor: its API takes no file descriptors).
func (s *Sandbox) vmmOpensEndpoints() bool {
	e, _, err := registry.Resolve(s.cfg)
	return err == nil && e.OpensEndpoints
}
