package virtiofs

import (
	"context"
	"fmt"
	"os"

	"github.com/veil-runtime/veil/runtime/proc"
)

// Adopt returns the Daemon of the virtiofsd that Start ran for cfg.Dir in
// another process (the warm pool's keeper), for this process to drive:
// the process is adopted with proc.Adopt (Done, Stop and MountNamespace
// work as after Start; its exit status stays unknown). Only cfg.Dir is
// used. It fails, leaving virtiofsd alone, when the socket is not there
// or the pid file names no virtiofsd of cfg.Dir.
func Adopt(ctx context.Context, cfg Config) (*Daemon, error) {
	socket := socketPath(cfg.Dir)
	st, err := os.Lstat(socket)
	if err != nil {
		return nil, fmt.Errorf("virtiofsd: adopt: %w", err)
	}
	if st.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("virtiofsd: adopt: %s is not a socket (%s)", socket, st.Mode().Type())
	}
	p, err := proc.Adopt(ctx, proc.Spec{Name: processName, Dir: cfg.Dir})
	if err != nil {
		return nil, err
	}
	return &Daemon{p: p, socket: socket}, nil
}
