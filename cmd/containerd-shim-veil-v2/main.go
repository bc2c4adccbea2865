// Command containerd-shim-veil-v2 is containerd's shim for the runtime
// type io.containerd.veil.v2: every pod runs in its own Veil micro-VM.
package main

import (
	"context"

	"github.com/moby/sys/reexec"

	"github.com/veil-runtime/veil/shim"
)

func main() {
	// The shim re-executes itself for work in virtiofsd's mount
	// namespace (runtime/statedir); that copy stops here.
	if reexec.Init() {
		return
	}
	shim.Run(context.Background())
}
