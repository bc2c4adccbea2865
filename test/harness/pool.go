package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/pool"
	"github.com/veil-runtime/veil/test/integration"
)

// Pool is a running `veil pool serve` (the warm pool's daemon) for a
// test, on the Veil config at ConfigPath.
type Pool struct {
	ConfigPath string
	LogPath    string
	cfg        *config.Config
	cmd        *exec.Cmd
	exited     chan struct{}
	waitErr    error
}

// StartPool runs the pool daemon on the Veil config at cfgPath (whose
// pool.size must be above 0), logging to logPath, and returns once its
// socket answers. Start it after the containerd whose census it must not
// disturb, and stop it before.
func StartPool(ctx context.Context, cfgPath, logPath string) (*Pool, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	veil, err := integration.LookPath("veil", integration.BinDirs())
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(veil, "--config", cfgPath, "pool", "serve")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = environ(integration.BinDirs(), nil)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pool daemon: %w", err)
	}
	p := &Pool{ConfigPath: cfgPath, LogPath: logPath, cfg: cfg, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.Wait(ctx, 0); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// Pid is the daemon's pid.
func (p *Pool) Pid() int { return p.cmd.Process.Pid }

// Status asks the daemon for its VMs.
func (p *Pool) Status(ctx context.Context) (pool.Status, error) { return pool.List(ctx, p.cfg) }

// Wait polls the daemon until at least ready VMs are ready, it exits, or
// ctx ends.
func (p *Pool) Wait(ctx context.Context, ready int) error {
	var last error
	for {
		st, err := p.Status(ctx)
		if err == nil {
			n := 0
			for _, v := range st.VMs {
				if v.State == "ready" {
					n++
				}
			}
			if n >= ready {
				return nil
			}
			last = fmt.Errorf("%d of %d VMs ready (%d failed boots; last: %s)", n, ready, st.Failures, st.LastError)
		} else {
			last = err
		}
		select {
		case <-p.exited:
			exit := p.waitErr
			if exit == nil {
				exit = errors.New("exit status 0")
			}
			return fmt.Errorf("pool daemon exited (%w); log %s:\n%s", exit, p.LogPath, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("pool not ready: %w (last: %w); log %s:\n%s", ctx.Err(), last, p.LogPath, p.logTail())
		case <-time.After(100 * time.Millisecond): // the daemon has no event to wait on
		}
	}
}

// Claims counts the claims the daemon logged so far.
func (p *Pool) Claims() int {
	b, _ := os.ReadFile(p.LogPath)
	return strings.Count(string(b), `msg="pool VM claimed"`)
}

// Swept is how many VMs the daemons logging to LogPath removed at their
// start because their keepers were gone (runtime/pool Sweep).
func (p *Pool) Swept() int {
	b, _ := os.ReadFile(p.LogPath)
	return strings.Count(string(b), `msg="pool: removing a VM whose keeper is gone"`)
}

// Stop ends the daemon with SIGTERM (it stops every idle VM first) and
// waits, within ctx; a daemon that does not exit cleanly is an error.
func (p *Pool) Stop(ctx context.Context) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.Kill()
		return fmt.Errorf("pool daemon did not stop: %w; log %s:\n%s", ctx.Err(), p.LogPath, p.logTail())
	}
	if p.waitErr != nil {
		return fmt.Errorf("pool daemon: %w; log %s:\n%s", p.waitErr, p.LogPath, p.logTail())
	}
	return nil
}

// Kill ends the daemon with SIGKILL, as a crash would, and waits for it.
func (p *Pool) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func (p *Pool) logTail() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// PoolDirs lists the pool VM directories under stateDir.
func PoolDirs(stateDir string) []string {
	m, _ := filepath.Glob(filepath.Join(stateDir, ".pool", "*"))
	var out []string
	for _, p := range m {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

// IsWarm reports whether sandbox id of stateDir runs in a pool VM (its
// state directory is a link into the pool).
func IsWarm(stateDir, id string) (bool, error) {
	fi, err := os.Lstat(filepath.Join(stateDir, id))
	if err != nil {
		return false, err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return false, nil
	}
	t, err := os.Readlink(filepath.Join(stateDir, id))
	if err != nil {
		return false, err
	}
	if !strings.HasPrefix(t, ".pool/") {
		return false, errors.New("sandbox link " + t + " does not lead into the pool")
	}
	return true, nil
}
