// Command containerd-shim-veil-v2 is containerd's shim for the runtime
// type io.containerd.veil.v2: every pod runs in its own Veil micro-VM.
package main

import (
	"context"

	"github.com/veil-runtime/veil/shim"
)

func main() {
	shim.Run(context.Background())
}
