package pool

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"syscall"

	"github.com/veil-runtime/veil/runtime/config"
)

// Key identifies the VM a configuration boots with nics network
// interfaces: a hash of every setting a
// pool VM fixes before a pod claims it (the hypervisor and binaries, the
// guest's kernel, initrd, command line and size, virtiofsd, the jail, the
// cgroup settings, the console, the state directory) and of the kernel's
// and initrd's file identity (a replaced image is a different VM). Two
// configurations with the same key boot the same VM; settings that only
// matter later (timeouts, volumes, the pool's own) are not in it.
func Key(cfg *config.Config, nics int) (string, error) {
	type file struct {
		Path        string
		Size, Mtime int64
		Ino         uint64
	}
	stat := func(p string) file {
		f := file{Path: p}
		if st, err := os.Stat(p); err == nil {
			f.Size, f.Mtime = st.Size(), st.ModTime().UnixNano()
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				f.Ino = sys.Ino
			}
		}
		return f
	}
	b, err := json.Marshal(struct {
		StateDir   string
		Hypervisor config.Hypervisor
		Guest      config.Guest
		Virtiofs   config.Virtiofs
		Jail       config.Jail
		Cgroups    config.Cgroups
		Console    config.Console
		Kernel     file
		Initrd     file
		NICs       int
	}{cfg.StateDir, cfg.Hypervisor, cfg.Guest, cfg.Virtiofs, cfg.Jail, cfg.Cgroups, cfg.Console, stat(cfg.Guest.Kernel), stat(cfg.Guest.Initrd), nics})
	if err != nil {
		return "", fmt.Errorf("pool key: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}
