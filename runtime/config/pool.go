package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Pool is the warm pool: sandbox VMs booted before any pod asks for one,
// kept by `veil pool serve` and claimed by the shim instead of a cold
// boot (runtime/pool). It is off unless Size is above 0. A pod whose
// effective configuration (after ConfigPath and annotations) boots a VM
// other than the pool's, or whose network has another number of
// interfaces than pool.nics, starts cold.
type Pool struct {
	// Size is how many booted, idle VMs the pool keeps; 0 turns it off.
	Size int `toml:"size"`
	// Socket is the pool daemon's Unix socket, where shims claim VMs
	// (root only).
	Socket string `toml:"socket"`
	// BootConcurrency bounds the VMs the daemon boots at once (a booting
	// VM under TCG keeps a core busy).
	BootConcurrency int `toml:"boot_concurrency"`
	// ClaimTimeout bounds a shim's claim; past it the pod starts cold.
	ClaimTimeout Duration `toml:"claim_timeout"`
	// MaxIdle is how long a VM may wait in the pool before the daemon
	// replaces it with a fresh one; 0 keeps VMs until claimed.
	MaxIdle Duration `toml:"max_idle"`
	// NICs is how many network interfaces each VM boots with (a VM
	// cannot add one later): pods with exactly that many interfaces (a
	// CRI pod has one, eth0; `ctr run` none) can claim one.
	NICs int `toml:"nics"`
}

// DefaultPoolSocket is where `veil pool serve` listens unless
// pool.socket says otherwise.
const DefaultPoolSocket = "/run/veil/pool.sock"

func defaultPool() Pool {
	return Pool{
		Socket:          DefaultPoolSocket,
		BootConcurrency: 1,
		ClaimTimeout:    Duration{2 * time.Second},
		MaxIdle:         Duration{time.Hour},
		NICs:            1,
	}
}

func (p Pool) validate() error {
	if p.Size < 0 {
		return fmt.Errorf("pool.size: %d is negative", p.Size)
	}
	if p.Size > 256 {
		return fmt.Errorf("pool.size: %d is above 256", p.Size)
	}
	if !filepath.IsAbs(p.Socket) || filepath.Clean(p.Socket) != p.Socket {
		return fmt.Errorf("pool.socket: %q is not a clean absolute path", p.Socket)
	}
	if len(p.Socket) > 107 {
		return fmt.Errorf("pool.socket: %q is longer than a Unix socket path may be (107 bytes)", p.Socket)
	}
	if p.BootConcurrency < 1 {
		return errors.New("pool.boot_concurrency: must be at least 1")
	}
	if p.ClaimTimeout.Duration <= 0 {
		return errors.New("pool.claim_timeout: must be positive")
	}
	if p.NICs < 0 || p.NICs > 8 {
		return fmt.Errorf("pool.nics: %d is not within 0..8", p.NICs)
	}
	if p.MaxIdle.Duration < 0 {
		return errors.New("pool.max_idle: must not be negative")
	}
	return nil
}
