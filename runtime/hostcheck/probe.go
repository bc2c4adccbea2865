package hostcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/runtime/proc"
)

// probeTimeout bounds each probe that starts a process.
const probeTimeout = 15 * time.Second

// jailProbeBinary is what TryJail runs in the jail: in /usr, so the
// jail's root has it without a bind.
const jailProbeBinary = "/usr/bin/true"

// TryJail runs /usr/bin/true through runtime/proc and runtime/jail,
// confined by s, in a temporary directory that receives its log, and
// returns nil when it exited 0. When the jail stage failed, the error
// holds what the stage wrote ("veil-jail: ..."). It needs root (else it
// returns a *SkipError) and a binary whose main calls reexec.Init first
// (the stage is a re-executed copy of it).
func TryJail(ctx context.Context, s *jail.Spec) error {
	if os.Geteuid() != 0 {
		return &SkipError{Reason: "not tried: veil check is not running as root (the jail stage needs root to enter namespaces and change uid)"}
	}
	if _, err := os.Stat(jailProbeBinary); err != nil {
		return &SkipError{Reason: fmt.Sprintf("not tried: %v", err)}
	}
	dir, err := os.MkdirTemp("", "veil-check-jail-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	p, err := proc.Start(ctx, proc.Spec{Name: "jail-check", Dir: dir, Path: jailProbeBinary, Jail: s})
	if err != nil {
		return err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		kctx, kcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer kcancel()
		_ = p.Kill(kctx)
		return fmt.Errorf("%s did not exit within %s in the jail", jailProbeBinary, probeTimeout)
	}
	if err := p.Err(); err != nil {
		log, _ := os.ReadFile(p.LogPath())
		if msg := stageFailure(log); msg != "" {
			return fmt.Errorf("%s (%w)", msg, err)
		}
		return fmt.Errorf("%s in the jail: %w", jailProbeBinary, err)
	}
	return nil
}

// stageFailure picks the jail stage's own lines ("veil-jail: ...") from
// a helper log, else the log's last line.
func stageFailure(log []byte) string {
	var picked, last string
	for _, l := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		last = l
		if strings.HasPrefix(l, "veil-jail:") {
			if picked != "" {
				picked += "; "
			}
			picked += l
		}
	}
	if picked != "" {
		return picked
	}
	return last
}

// QEMUSandboxOpts is the -sandbox option a jailed QEMU gets
// (runtime/hypervisor/qemu): its seccomp filter on, denying obsolete
// system calls, privilege changes, spawning and resource control.
const QEMUSandboxOpts = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// qmpQuit is what the QEMU probe sends on its QMP stdio.
const qmpQuit = `{"execute":"qmp_capabilities"}` + "\n" + `{"execute":"quit"}` + "\n"

// ProbeQEMUSandbox starts the QEMU at path with -sandbox QEMUSandboxOpts
// and no machine (-M none, stopped, no devices), QMP on stdio, and asks
// it to quit: QEMU installs its seccomp filter while it parses its early
// options, before the monitor answers, so a QEMU built without
// libseccomp ("-sandbox is not supported by this QEMU binary") or a
// kernel that refuses the filter ("failed to install seccomp syscall
// filter in the kernel") exits 1 with that message. About 0.1 s.
func ProbeQEMUSandbox(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-sandbox", QEMUSandboxOpts,
		"-M", "none", "-display", "none", "-nodefaults", "-no-user-config", "-S", "-qmp", "stdio")
	cmd.Stdin = strings.NewReader(qmpQuit)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s -sandbox %s did not quit within %s", path, QEMUSandboxOpts, probeTimeout)
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return fmt.Errorf("%s (%w)", strings.ReplaceAll(msg, "\n", "; "), err)
	}
	return fmt.Errorf("%s -sandbox %s: %w", path, QEMUSandboxOpts, err)
}
