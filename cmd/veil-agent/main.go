// Command veil-agent is the guest side of Veil: PID 1 of the micro-VM,
// which starts itself again as the agent server, as a pod holder (the
// process that keeps a CRI pod's namespaces), and as runc's `init` when
// libcontainer re-executes it inside a new container.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/container"
	"github.com/veil-runtime/veil/agent/guest"
	"github.com/veil-runtime/veil/agent/network"
	"github.com/veil-runtime/veil/agent/server"
	"github.com/veil-runtime/veil/runtime/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == container.InitArg && os.Getenv("_LIBCONTAINER_INITTYPE") != "" {
		// libcontainer's re-exec inside a new container (after nsexec);
		// it may be PID 1 of the container's PID namespace.
		container.Init()
		return
	}
	if container.IsHolder() {
		// The agent's own process that keeps a pod's namespaces (it is
		// PID 1 of the pod's PID namespace).
		container.RunHolder()
		return
	}
	if os.Getpid() == 1 {
		// The guest's init: its arguments are the words of the kernel
		// command line the kernel did not take, never commands.
		pid1()
		return
	}
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "version") {
		fmt.Printf("veil-agent %s (agent protocol %d)\n", version.Version, api.APIVersion)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == guest.ServerArg {
		os.Exit(serve(os.Args[2:]))
	}
	fmt.Fprintf(os.Stderr, "usage: veil-agent [--version | %s [flags]]; as PID 1 it boots the guest\n", guest.ServerArg)
	os.Exit(2)
}

// pid1 boots the guest, supervises the server and powers off when it ends.
func pid1() {
	ctx := context.Background()
	_ = guest.SetupLogging(os.Stderr, "info", "pid1")
	if err := guest.Boot(ctx); err != nil {
		log.G(ctx).WithError(err).Error("guest boot failed")
	} else if ws, err := guest.Supervise(ctx, nil); err != nil {
		log.G(ctx).WithError(err).Error("agent server failed to run")
	} else {
		log.G(ctx).WithField("status", container.ExitStatus(ws)).Error("agent server ended")
	}
	if err := guest.PowerOff(ctx); err != nil {
		log.G(ctx).WithError(err).Error("power off failed")
	}
	select {} // PID 1 must never exit: that panics the kernel.
}

// serve runs the agent server until SIGTERM.
func serve(args []string) int {
	fs := flag.NewFlagSet(guest.ServerArg, flag.ContinueOnError)
	level := fs.String("log-level", "info", "log level")
	unixDir := fs.String("unix-dir", "", "listen on Unix sockets agent.sock and stream.sock in this directory instead of vsock (host tests)")
	stateRoot := fs.String("state-root", container.DefaultStateRoot, "libcontainer state directory")
	sharedDir := fs.String("shared-dir", api.SharedDir, "directory that holds container root filesystems")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := guest.SetupLogging(os.Stderr, *level, "server"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	opts := server.Options{
		Version:   version.Version,
		UnixDir:   *unixDir,
		Container: container.Config{StateRoot: *stateRoot, SharedDir: *sharedDir},
		Guest:     guest.System{},
	}
	if *unixDir == "" {
		// Only inside the VM: on a host (tests) it would reconfigure the
		// host's network, and warm up in the host's cgroups.
		opts.Network = network.New(network.Options{})
		opts.WarmUp = func(ctx context.Context) error {
			return container.WarmUp(ctx, api.WarmUpDir, guest.Busybox)
		}
	}
	err := server.Run(ctx, opts)
	if err != nil {
		log.G(ctx).WithError(err).Error("agent server failed")
		return 1
	}
	return 0
}
