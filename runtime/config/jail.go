package config

import (
	"errors"
	"fmt"
	"path/filepath"
)

func (j Jail) validate() error {
	if !j.Enabled {
		return nil
	}
	if j.UIDBase == 0 {
		return errors.New("jail.uid_base: must not be 0 (root)")
	}
	if j.UIDCount == 0 {
		return errors.New("jail.uid_count: must be at least 1")
	}
	if uint64(j.UIDBase)+uint64(j.UIDCount) > 1<<32-2 {
		return fmt.Errorf("jail.uid_base + jail.uid_count: %d + %d passes the largest uid (4294967293)", j.UIDBase, j.UIDCount)
	}
	if j.RlimitNofile < 64 {
		return fmt.Errorf("jail.rlimit_nofile: %d is below 64", j.RlimitNofile)
	}
	if j.RlimitFsizeMiB == 0 {
		return errors.New("jail.rlimit_fsize_mib: must be at least 1")
	}
	return nil
}

func (c Cgroups) validate() error {
	if !c.Enabled {
		return nil
	}
	if !filepath.IsAbs(c.Parent) || filepath.Clean(c.Parent) != c.Parent || c.Parent == "/" {
		return fmt.Errorf("cgroups.parent: %q is not a clean absolute cgroup path below the root", c.Parent)
	}
	if c.PidsLimit < 64 {
		return fmt.Errorf("cgroups.pids_limit: %d is below 64", c.PidsLimit)
	}
	return nil
}
