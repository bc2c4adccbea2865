package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// requestTimeout bounds a client's request and the daemon's answer.
const requestTimeout = 5 * time.Second

// accept serves clients until the listener closes.
func (d *Daemon) accept(ctx context.Context, l *net.UnixListener) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.G(ctx).WithError(err).Warn("pool: accept")
			}
			return
		}
		d.handlers.Add(1)
		go func() {
			defer d.handlers.Done()
			defer func() { _ = c.Close() }()
			if err := d.handle(ctx, c); err != nil {
				log.G(ctx).WithError(err).Warn("pool: request")
			}
		}()
	}
}

func (d *Daemon) handle(ctx context.Context, c *net.UnixConn) error {
	if err := peerIsOwn(c); err != nil {
		return err
	}
	var req request
	files, err := receive(c, &req, time.Now().Add(requestTimeout))
	closeFiles(files)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(requestTimeout)
	switch req.Op {
	case "list":
		return send(c, d.list(), nil, deadline)
	case "claim":
		return d.claim(ctx, c, req)
	default:
		return send(c, reply{Error: fmt.Sprintf("unknown request %q", req.Op)}, nil, deadline)
	}
}

// claim hands the oldest ready VM to the shim on c: it links the
// sandbox id to the VM's directory, tells the keeper, and passes the
// owner connection and the keeper's pidfd. A VM that fails any of it is
// stopped (its keeper sees its owner gone) and its link removed, never
// put back.
func (d *Daemon) claim(ctx context.Context, c *net.UnixConn, req request) error {
	deadline := time.Now().Add(requestTimeout)
	if req.Deadline > 0 {
		deadline = time.Unix(0, req.Deadline)
	}
	if err := api.ValidateID("sandbox id", req.ID); err != nil {
		return send(c, reply{Error: err.Error()}, nil, deadline)
	}
	v, conn, reason := d.take(req.Key)
	if v == nil {
		return send(c, reply{Reason: reason, Error: "pool " + reason}, nil, deadline)
	}
	defer func() {
		// The shim holds its own copies now, or the VM goes.
		_ = conn.Close()
		_ = v.pidfd.Close()
		d.signal()
	}()
	lg := log.G(ctx).WithFields(log.Fields{"pool_vm": v.ID, "sandbox": req.ID})
	var dir statedir.Dir
	linked := false
	fail := func(reason string, err error) error {
		lg.WithError(err).Warn("pool: claim failed; the VM is stopped")
		if linked {
			if cd, cerr := dir.Claimed(req.ID); cerr == nil {
				_ = statedir.RemoveLink(ctx, cd)
			}
		}
		_ = send(c, reply{Reason: reason, Error: err.Error()}, nil, deadline)
		return err
	}
	if time.Until(deadline) <= 0 {
		return fail("", errors.New("the claimant's deadline passed"))
	}
	dir, err := statedir.NewPool(d.Config.StateDir, v.ID)
	if err != nil {
		return fail("", err)
	}
	if err := statedir.Link(d.Config.StateDir, req.ID, dir); err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			return fail(reasonExists, err)
		}
		return fail("", err)
	}
	linked = true
	if err := send(conn, request{Op: "claim", ID: req.ID}, nil, deadline); err != nil {
		return fail("", fmt.Errorf("tell the keeper: %w", err))
	}
	var r reply
	files, err := receive(conn, &r, deadline)
	closeFiles(files)
	if err == nil && r.State != "claimed" {
		err = fmt.Errorf("keeper answered %q: %s", r.State, r.Error)
	}
	if err != nil {
		return fail("", fmt.Errorf("keeper: %w", err))
	}
	owner, err := conn.File()
	if err != nil {
		return fail("", err)
	}
	defer func() { _ = owner.Close() }()
	if err := send(c, reply{VM: v.ID}, []*os.File{owner, v.pidfd}, deadline); err != nil {
		// The link stays: the claimant may hold the VM (its cleanup of
		// the sandbox id removes it), or it is gone and containerd's
		// cleanup of the id does.
		return fmt.Errorf("hand VM %s to sandbox %s: %w", v.ID, req.ID, err)
	}
	lg.WithField("waited", time.Since(v.Since).Round(time.Second)).Info("pool VM claimed")
	return nil
}
