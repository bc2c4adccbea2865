// Command hostshim is a test double: the Veil shim with sandboxes whose
// "guest" is the host itself. Its agent runs container processes as plain
// host processes (no VM, no isolation; the rootfs is mounted but not
// entered), so the shim's containerd side (bootstrap, FIFOs, events, exit
// codes, terminals, exec) can be exercised where no VM can boot. Install
// it as containerd-shim-veilhost-v2 and run with --runtime
// io.containerd.veilhost.v2.
package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/shim"
)

func main() {
	shim.RunWithLauncher(context.Background(), func() (shim.Launcher, error) {
		return &launcher{root: "/run/veil-hostshim"}, nil
	})
}

type launcher struct{ root string }

func (l *launcher) Start(ctx context.Context, id string, _ shim.SandboxOptions) (shim.Sandbox, error) {
	dir := filepath.Join(l.root, id)
	if err := os.MkdirAll(filepath.Join(dir, "shared"), 0o700); err != nil {
		return nil, err
	}
	s := &sandbox{id: id, dir: dir, done: make(chan struct{}), streams: newStreamTable()}
	s.agent = &agent{sb: s, procs: map[string]*proc{}, specs: map[string]*containerSpec{}}
	return s, nil
}

func (l *launcher) Cleanup(ctx context.Context, id string) error {
	return os.RemoveAll(filepath.Join(l.root, id))
}

func (l *launcher) StateDir() string { return l.root }

type sandbox struct {
	id, dir string
	agent   *agent
	done    chan struct{}
	once    sync.Once
	streams *streamTable
}

func (s *sandbox) ID() string            { return s.id }
func (s *sandbox) SharedDir() string     { return filepath.Join(s.dir, "shared") }
func (s *sandbox) Done() <-chan struct{} { return s.done }
func (s *sandbox) Pids() map[string]int  { return map[string]int{"qemu": os.Getpid()} }

func (s *sandbox) Stop(ctx context.Context) error {
	s.once.Do(func() {
		s.agent.killAll()
		close(s.done)
	})
	return os.RemoveAll(s.dir)
}

func (s *sandbox) Agent() api.AgentService { return s.agent }
