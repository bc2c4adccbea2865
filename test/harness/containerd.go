package harness

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/test/integration"
)

// Options configures a private containerd.
type Options struct {
	// Dir holds the config, root, state, sockets and log. Start creates it
	// (a fresh temporary directory when empty) and Stop removes it, so keep
	// it short: Unix socket paths are limited to 107 bytes.
	Dir string
	// Path lists directories put in front of containerd's (and so the
	// shims') PATH. Nil means <output>/bin and <cache>/bin, where the Veil
	// shim and containerd-shim-runc-v2 live.
	Path []string
	// Env adds variables to containerd's environment, which the shims
	// inherit (for example VEIL_CONFIG=...).
	Env []string
	// LogLevel is containerd's --log-level; empty means info.
	LogLevel string
	// StartTimeout bounds the wait for containerd's socket; zero means 30s.
	StartTimeout time.Duration
	// ExtraConfig is TOML appended to the generated config.
	ExtraConfig string
	// CRI, when set, enables containerd's CRI plugin with the runc and
	// veil runtime handlers, CNI and a private registry (see CRIOptions).
	// Nil keeps the CRI plugin disabled.
	CRI *CRIOptions
	// StateDir is the Veil state_dir the leak census (see Census) counts;
	// empty means the state_dir of the Veil config the shims load.
	StateDir string
}

// Containerd is a running private containerd, in its own network
// namespace, serving on sockets under Dir.
type Containerd struct {
	// Address is the containerd gRPC socket.
	Address string
	// NetNS names the network namespace containerd runs in
	// (/run/netns/<NetNS>).
	NetNS string
	// Dir is the private directory; LogPath is containerd's log inside it.
	Dir     string
	LogPath string
	// Registry is the private registry containerd's CRI pulls from (CRI
	// mode only; nil otherwise).
	Registry *Registry

	cri            *CRIOptions
	opts           Options
	ctrPath        string
	containerdPath string
	configPath     string
	// census is the host before Start; Stop fails when the host differs
	// from it after teardown.
	census      *Census
	censusScope CensusScope
	env         []string
	cmd         *exec.Cmd
	exited      chan struct{}
	waitErr     error
	stopped     bool
}

// disabledPlugins keeps the daemon light: no CRI (and what only CRI uses;
// CRI mode keeps those), no NRI socket in /var/run/nri shared between
// instances.
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.cri.v1.images",
	"io.containerd.cri.v1.runtime",
	"io.containerd.podsandbox.controller.v1.podsandbox",
	"io.containerd.nri.v1.nri",
}

// Start creates a network namespace and runs containerd in it with a
// config whose root, state and sockets all live under opts.Dir. It returns
// once the gRPC socket accepts connections. On failure everything it set
// up is undone.
func Start(ctx context.Context, opts Options) (_ *Containerd, retErr error) {
	var undo []func() error
	defer func() {
		if retErr == nil {
			return
		}
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](); err != nil {
				log.G(ctx).WithError(err).Warn("harness: rollback step failed")
			}
		}
	}()

	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "veil-ctrd-")
		if err != nil {
			return nil, fmt.Errorf("create containerd dir: %w", err)
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create containerd dir %s: %w", dir, err)
	}
	undo = append(undo, func() error { return os.RemoveAll(dir) })
	c := &Containerd{
		Address: filepath.Join(dir, "containerd.sock"),
		Dir:     dir,
		LogPath: filepath.Join(dir, "containerd.log"),
		cri:     opts.CRI,
		opts:    opts,
		exited:  make(chan struct{}),
	}
	c.censusScope = CensusScope{StateDir: veilStateDir(opts), Dirs: []string{ctrFIFODir}}
	c.census = TakeCensus(c.censusScope)
	if n := len(c.Address) + len(".ttrpc"); n > 107 {
		return nil, fmt.Errorf("containerd dir %s is too long for Unix socket paths (%d > 107 bytes): use a shorter Options.Dir", dir, n)
	}

	path := opts.Path
	if path == nil {
		path = integration.BinDirs()
	}
	c.env = environ(path, opts.Env)
	containerdPath, err := lookPath("containerd", path)
	if err != nil {
		return nil, err
	}
	if c.ctrPath, err = lookPath("ctr", path); err != nil {
		return nil, err
	}

	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(c.config(opts.ExtraConfig)), 0o600); err != nil {
		return nil, fmt.Errorf("write containerd config: %w", err)
	}

	c.NetNS, err = newNetNS(ctx, "veil-")
	if err != nil {
		return nil, fmt.Errorf("create network namespace: %w", err)
	}
	undo = append(undo, func() error { return deleteNetNS(context.WithoutCancel(ctx), c.NetNS) })
	if c.cri != nil {
		criUndo, err := c.setupCRI(ctx)
		undo = append(undo, criUndo...)
		if err != nil {
			return nil, fmt.Errorf("set up CRI mode: %w", err)
		}
	}

	c.containerdPath = containerdPath
	c.configPath = cfg
	undo = append(undo, func() error {
		c.kill()
		return mount.UnmountRecursive(dir, unix.MNT_DETACH)
	})
	if err := c.launch(ctx); err != nil {
		return nil, err
	}
	log.G(ctx).WithField("address", c.Address).WithField("netns", c.NetNS).Debug("harness: containerd ready")
	return c, nil
}

// launch runs containerd and waits for its socket.
func (c *Containerd) launch(ctx context.Context) error {
	logFile, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open containerd log: %w", err)
	}
	defer func() { _ = logFile.Close() }()
	level := c.opts.LogLevel
	if level == "" {
		level = "info"
	}
	// nsenter execs containerd after setns: the pid is containerd's.
	// Not CommandContext: ctx bounds the start, not containerd's life.
	cmd := exec.Command("nsenter", "--net="+netnsPath(c.NetNS), c.containerdPath, "--config", c.configPath, "--log-level", level)
	cmd.Env = c.env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = c.Dir
	// Own process group: a ^C to the test or demo reaches us, not containerd,
	// so Stop still gets to clean up in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	exited := make(chan struct{})
	c.cmd, c.exited = cmd, exited
	go func() {
		c.waitErr = cmd.Wait()
		close(exited)
	}()
	timeout := c.opts.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return c.waitReady(ctx, timeout)
}

// kill stops containerd with SIGKILL and waits for it, as a crash would;
// its shims keep running.
func (c *Containerd) kill() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// Crash kills containerd with SIGKILL (its shims and their tasks keep
// running) and returns once it is gone.
func (c *Containerd) Crash() { c.kill() }

// Restart starts containerd again with the same config, directory and
// network namespace, after Crash; it returns once the socket answers.
func (c *Containerd) Restart(ctx context.Context) error {
	select {
	case <-c.exited:
	default:
		return fmt.Errorf("restart containerd: it is still running (pid %d)", c.cmd.Process.Pid)
	}
	return c.launch(ctx)
}

// config renders containerd's TOML config.
func (c *Containerd) config(extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 4\nroot = %q\nstate = %q\n", filepath.Join(c.Dir, "root"), filepath.Join(c.Dir, "state"))
	var disabled []string
	for _, p := range disabledPlugins {
		if c.cri == nil || !criPlugins[p] {
			disabled = append(disabled, p)
		}
	}
	fmt.Fprintf(&b, "disabled_plugins = [%s]\n\n", quoteList(disabled))
	fmt.Fprintf(&b, "[plugins.\"io.containerd.server.v1.grpc\"]\n  address = %q\n\n", c.Address)
	fmt.Fprintf(&b, "[plugins.\"io.containerd.server.v1.ttrpc\"]\n  address = %q\n\n", c.Address+".ttrpc")
	fmt.Fprintf(&b, "[plugins.\"io.containerd.server.v1.debug\"]\n  address = %q\n\n", filepath.Join(c.Dir, "debug.sock"))
	fmt.Fprintf(&b, "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %q\n", filepath.Join(c.Dir, "opt"))
	if c.cri != nil {
		b.WriteString("\n" + c.criConfig())
	}
	if extra != "" {
		b.WriteString("\n" + extra + "\n")
	}
	return b.String()
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// waitReady polls the gRPC socket until it accepts a connection, containerd
// exits, or the timeout passes.
func (c *Containerd) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if conn, err := net.Dial("unix", c.Address); err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-c.exited:
			if c.waitErr == nil {
				return fmt.Errorf("containerd exited during start (status 0); log %s: %s", c.LogPath, c.logTail())
			}
			return fmt.Errorf("containerd exited during start (%w); log %s: %s", c.waitErr, c.LogPath, c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("containerd socket %s not ready after %s: %w; log %s: %s", c.Address, timeout, ctx.Err(), c.LogPath, c.logTail())
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of containerd's log, for error messages.
func (c *Containerd) logTail() string {
	b, err := os.ReadFile(c.LogPath)
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// Ctr returns a ctr command talking to this containerd, run inside its
// network namespace (nsenter, not `ip netns exec`, which remounts /sys and
// hides the cgroup filesystem from runc).
func (c *Containerd) Ctr(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--net=" + netnsPath(c.NetNS), c.ctrPath, "--address", c.Address}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Env = append(append([]string(nil), c.env...), "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// CtrOutput runs ctr with args and returns its stdout; the error carries
// stderr.
func (c *Containerd) CtrOutput(ctx context.Context, args ...string) ([]byte, error) {
	cmd := c.Ctr(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Import loads an image tarball (see test/image) into the default
// namespace and unpacks it.
func (c *Containerd) Import(ctx context.Context, tarPath string) error {
	_, err := c.CtrOutput(ctx, "images", "import", "--platform", "linux/amd64", tarPath)
	return err
}

// environ returns the process environment with dirs in front of PATH and
// extra appended (later entries win).
func environ(dirs, extra []string) []string {
	env := make([]string, 0, len(os.Environ())+len(extra)+1)
	path := os.Getenv("PATH")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	if len(dirs) > 0 {
		path = strings.Join(dirs, string(os.PathListSeparator)) + string(os.PathListSeparator) + path
	}
	env = append(env, "PATH="+path)
	return append(env, extra...)
}

// lookPath finds name in dirs first, then on PATH.
func lookPath(name string, dirs []string) (string, error) { return integration.LookPath(name, dirs) }
