package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/mdlayher/vsock"
	"golang.org/x/sync/errgroup"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/container"
	"github.com/veil-runtime/veil/agent/guest"
	"github.com/veil-runtime/veil/agent/stream"
	"github.com/veil-runtime/veil/runtime/cleanup"
)

// shutdownTimeout bounds the cleanup when the agent is told to stop.
const shutdownTimeout = 15 * time.Second

// errServerEnded ends the serve group when a server returns without an
// error of its own (it was closed): the other one stops too.
var errServerEnded = errors.New("server ended")

// Options configure Run.
type Options struct {
	// Version is the agent's release, reported by Health.
	Version string
	// UnixDir, when set, makes the agent listen on Unix sockets
	// UnixDir/agent.sock and UnixDir/stream.sock instead of vsock (for
	// tests on a host).
	UnixDir string
	// Container configures the container manager.
	Container container.Config
	// Guest does the sandbox-level guest work.
	Guest Guest
	// Network configures the guest's network; nil answers SetupNetwork
	// with Unimplemented.
	Network Network
	// WarmUp runs a pod's start once and removes it
	// (container.WarmUp); nil makes the WarmUp request warm the network
	// only.
	WarmUp func(ctx context.Context) error
}

// Listen opens the agent and stream listeners: vsock ports api.AgentPort
// and api.StreamPort, or Unix sockets in opts.UnixDir.
func Listen(opts Options) (agentL, streamL net.Listener, err error) {
	if opts.UnixDir != "" {
		agentL, err = listenUnix(filepath.Join(opts.UnixDir, "agent.sock"))
		if err != nil {
			return nil, nil, err
		}
		streamL, err = listenUnix(filepath.Join(opts.UnixDir, "stream.sock"))
		if err != nil {
			_ = agentL.Close()
			return nil, nil, err
		}
		return agentL, streamL, nil
	}
	agentL, err = vsock.Listen(api.AgentPort, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on vsock port %d: %w", api.AgentPort, err)
	}
	streamL, err = vsock.Listen(api.StreamPort, nil)
	if err != nil {
		_ = agentL.Close()
		return nil, nil, fmt.Errorf("listen on vsock port %d: %w", api.StreamPort, err)
	}
	return agentL, streamL, nil
}

func listenUnix(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}

// Run serves the agent until ctx ends, then removes every container and
// unmounts the share.
func Run(ctx context.Context, opts Options) error {
	agentL, streamL, err := Listen(opts)
	if err != nil {
		return err
	}
	if opts.UnixDir == "" {
		agentL, streamL = hostOnly{agentL, ctx}, hostOnly{streamL, ctx}
		// The listeners queue connections from here on, so the host may
		// dial before Serve accepts. The notification is bounded
		// (readyTimeout); Run waits for it before it returns.
		var notified sync.WaitGroup
		defer notified.Wait()
		notified.Go(func() {
			if err := notifyReady(ctx); err != nil {
				log.G(ctx).WithError(err).Error("could not tell the host that the agent serves")
			}
		})
	}
	return Serve(ctx, agentL, streamL, opts)
}

// Serve serves ttrpc on agentL and stream connections on streamL until
// ctx ends; it owns and closes both listeners.
func Serve(ctx context.Context, agentL, streamL net.Listener, opts Options) error {
	reg := stream.NewRegistry(stream.DefaultUnclaimedTTL)
	mgr := container.NewManager(opts.Container, reg)
	svc := NewService(opts.Version, mgr, opts.Guest)
	svc.network = opts.Network
	svc.warmUp = opts.WarmUp

	srv, err := ttrpc.NewServer()
	if err != nil {
		_ = agentL.Close()
		_ = streamL.Close()
		return fmt.Errorf("new ttrpc server: %w", err)
	}
	api.RegisterAgentService(srv, svc)

	// The group owns both servers: the first to end (or ctx) ends the
	// other, and Serve returns only once both have.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer func() { _ = streamL.Close() }() // also when Serve failed by itself
		if err := stream.Serve(gctx, streamL, reg); err != nil {
			return fmt.Errorf("stream listener: %w", err)
		}
		return errServerEnded
	})
	g.Go(func() error {
		if err := srv.Serve(gctx, agentL); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			return fmt.Errorf("ttrpc server: %w", err)
		}
		return errServerEnded
	})
	g.Go(func() error {
		<-gctx.Done()
		// Stop accepting: ends srv.Serve, and stream.Serve (which
		// closes streamL when its context ends).
		_ = srv.Close()
		return nil
	})
	log.G(ctx).WithFields(log.Fields{"agent": agentL.Addr().String(), "streams": streamL.Addr().String(), "uptime": guest.Uptime()}).Info("agent serving")

	runErr := g.Wait()
	if errors.Is(runErr, errServerEnded) {
		runErr = nil
	}
	log.G(ctx).WithError(runErr).Info("agent stopping")
	cctx, ccancel := cleanup.Context(ctx, shutdownTimeout)
	defer ccancel()
	if _, err := svc.DestroySandbox(cctx, &api.DestroySandboxRequest{}); err != nil {
		log.G(ctx).WithError(err).Warn("cleanup at stop")
	}
	reg.Close()
	return runErr
}
