package cgroup

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/opencontainers/cgroups/systemd"
)

// Path chooses the sandbox cgroup path. cgroupsPath is the OCI spec's
// linux.cgroupsPath of the sandbox (pause) container when the sandbox was
// created by CRI (cri == true): either a cgroupfs path
// ("/kubepods/burstable/pod<uid>/<id>"), used as it is, or the systemd
// form "slice:prefix:name" ("kubepods-burstable-pod123.slice:cri-containerd:<id>"),
// expanded to the cgroupfs directory runc would use
// ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice/cri-containerd-<id>.scope").
// Without CRI, or with an empty cgroupsPath, the path is parent + "/" + id.
//
// The result is a clean absolute path below the cgroup root; anything else
// (relative, unclean, "..", the root itself) is an error naming the value.
func Path(cgroupsPath string, cri bool, parent, id string) (string, error) {
	var p string
	switch {
	case cri && cgroupsPath != "":
		switch {
		case strings.HasPrefix(cgroupsPath, "/"):
			p = cgroupsPath
		case strings.Contains(cgroupsPath, ":"):
			var err error
			if p, err = expandSystemd(cgroupsPath); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("cgroupsPath %q is relative: want an absolute cgroupfs path or the systemd form slice:prefix:name", cgroupsPath)
		}
		if err := checkPath(p); err != nil {
			return "", fmt.Errorf("cgroupsPath %q: %w", cgroupsPath, err)
		}
	default:
		if id == "" || strings.Contains(id, "/") {
			return "", fmt.Errorf("sandbox id %q is not a single cgroup name", id)
		}
		if parent == "" {
			return "", fmt.Errorf("sandbox %s: no cgroup parent given", id)
		}
		p = parent + "/" + id
		if err := checkPath(p); err != nil {
			return "", fmt.Errorf("cgroup parent %q, sandbox id %q: %w", parent, id, err)
		}
	}
	return p, nil
}

// expandSystemd turns "slice:prefix:name" into its cgroupfs path, the way
// runc's systemd driver names it: the slice expanded
// ("a-b.slice" -> "/a.slice/a-b.slice", "" meaning "system.slice"), then
// the unit, "<prefix>-<name>.scope", or name itself when it is a slice.
func expandSystemd(s string) (string, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return "", fmt.Errorf("cgroupsPath %q: the systemd form is slice:prefix:name (3 fields), got %d", s, len(parts))
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if name == "" {
		return "", fmt.Errorf("cgroupsPath %q: the systemd form has an empty name", s)
	}
	if strings.Contains(prefix, "/") || strings.Contains(name, "/") {
		return "", fmt.Errorf("cgroupsPath %q: a systemd unit name cannot contain /", s)
	}
	if slice == "" {
		slice = "system.slice"
	}
	dir, err := systemd.ExpandSlice(slice)
	if err != nil {
		return "", fmt.Errorf("cgroupsPath %q: %w", s, err)
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		unit = prefix + "-" + name + ".scope"
	}
	// Not path.Join: it would clean away a bad unit name ("..") that
	// checkPath must see.
	if dir == "/" {
		return "/" + unit, nil
	}
	return dir + "/" + unit, nil
}

// checkPath accepts a clean absolute cgroup path below the root.
func checkPath(p string) error {
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return fmt.Errorf("cgroup path %q contains \"..\"", p)
		}
	}
	switch {
	case !path.IsAbs(p):
		return fmt.Errorf("cgroup path %q is relative", p)
	case path.Clean(p) != p:
		return fmt.Errorf("cgroup path %q is not clean (want %q)", p, path.Clean(p))
	case p == "/":
		return errors.New("cgroup path is the root cgroup")
	}
	return nil
}
