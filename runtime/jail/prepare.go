package jail

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/reexec"
)

// stageName is the argv[0] under which a binary runs the jail stage.
const stageName = "veil-jail"

// maxRequest bounds the request the stage reads.
const maxRequest = 1 << 20

// jailedPath is the PATH a helper with its own root sees.
const jailedPath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

// request is what the parent sends the stage once it may go on.
type request struct {
	Spec Spec     `json:"spec"`
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

// Stage is a helper's jail stage prepared in an exec.Cmd: start the Cmd,
// place its pid where it belongs (its cgroup), then Release it.
type Stage struct {
	req  []byte
	r, w *os.File
}

// Prepare rewrites cmd, whose Path, Args, Env and ExtraFiles describe the
// helper, to start the jail stage that confines and then execs it. The
// helper keeps its ExtraFiles at fds 3, 4, ...; with namespaces it runs
// with a minimal environment (PATH and cmd.Env). The binary must call
// reexec.Init first thing in main.
func Prepare(cmd *exec.Cmd, s *Spec) (*Stage, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	spec := *s
	path, err := exec.LookPath(cmd.Path)
	if err != nil {
		return nil, fmt.Errorf("jail: %w", err)
	}
	if spec.Namespaces {
		// The helper's binary must be in its root: /usr is; anything
		// else is bound read-only at its real path.
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, fmt.Errorf("jail: helper binary: %w", err)
		}
		if real, err = filepath.Abs(real); err != nil {
			return nil, fmt.Errorf("jail: helper binary: %w", err)
		}
		path = real
		if !strings.HasPrefix(real, "/usr/") {
			spec.Binds = append(spec.Binds, Bind{Source: real, Target: real})
		}
	}
	env := cmd.Env
	if spec.Namespaces {
		env = append([]string{jailedPath}, cmd.Env...)
	} else if env == nil {
		env = os.Environ()
	}
	req, err := json.Marshal(request{Spec: spec, Path: path, Args: cmd.Args, Env: env})
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("jail: %w", err)
	}
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	cmd.Path = reexec.Self()
	cmd.Args = []string{stageName, strconv.Itoa(fd)}
	cmd.Env = []string{}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if spec.Namespaces {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS
		if spec.NetNS == "" {
			cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWNET
		}
	}
	return &Stage{req: req, r: r, w: w}, nil
}

// Release lets a started stage go on: it sends the request. Call it once
// the stage's pid is where it must be; the stage runs nothing before.
func (st *Stage) Release() error {
	_ = st.r.Close()
	_, err := st.w.Write(st.req)
	if cerr := st.w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("jail: send request to the stage: %w", err)
	}
	return nil
}

// Abort closes the stage's pipe without a request: a started stage exits
// without running the helper.
func (st *Stage) Abort() {
	_ = st.r.Close()
	_ = st.w.Close()
}
