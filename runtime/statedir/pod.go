package statedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxPodFile bounds how much of a pod file is read.
const maxPodFile = 4096

// Pod names the Kubernetes pod a sandbox runs, from the CRI annotations
// of its sandbox container; every field is empty for a sandbox CRI did
// not make (ctr run).
type Pod struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	UID       string `json:"uid,omitempty"`
}

// IsZero reports a Pod that names nothing.
func (p Pod) IsZero() bool { return p == Pod{} }

// WritePod records p in d (PodFile); a zero Pod writes nothing. The
// directory is the host's alone, so the file is written as is.
func WritePod(d Dir, p Pod) error {
	if p.IsZero() {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("record pod: %w", err)
	}
	if len(b) > maxPodFile {
		return fmt.Errorf("pod %s/%s: record of %d bytes is over %d", p.Namespace, p.Name, len(b), maxPodFile)
	}
	// Whole or not at all for a reader: written aside, then renamed.
	tmp := d.File(PodFile + ".new")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("record pod: %w", err)
	}
	if err := os.Rename(tmp, d.File(PodFile)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("record pod: %w", err)
	}
	return nil
}

// ReadPod reads d's pod record: a zero Pod when there is none.
func ReadPod(d Dir) (Pod, error) {
	var p Pod
	f, err := os.Open(d.File(PodFile))
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read pod record: %w", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxPodFile+1))
	if err != nil {
		return p, fmt.Errorf("read pod record %s: %w", f.Name(), err)
	}
	if len(b) > maxPodFile {
		return p, fmt.Errorf("pod record %s is over %d bytes", f.Name(), maxPodFile)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("pod record %s: %w", f.Name(), err)
	}
	return p, nil
}

// CgroupPath is the sandbox cgroup's path recorded in d (CgroupFile), ""
// when none is.
func CgroupPath(d Dir) (string, error) {
	b, err := os.ReadFile(d.File(CgroupFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read cgroup record: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
