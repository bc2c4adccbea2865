package harness

import (
	"context"

	"github.com/veil-runtime/veil/test/testnet"
)

// netnsDir is where `ip netns` keeps its named network namespaces.
const netnsDir = testnet.Dir

// newNetNS creates a named network namespace prefix<random> with lo up.
func newNetNS(ctx context.Context, prefix string) (string, error) { return testnet.New(ctx, prefix) }

func deleteNetNS(ctx context.Context, name string) error { return testnet.Delete(ctx, name) }

// netnsPath is the bind-mount that pins network namespace name.
func netnsPath(name string) string { return testnet.Path(name) }

// run runs a host command, returning its combined output in the error.
func run(ctx context.Context, name string, args ...string) error {
	return testnet.Run(ctx, name, args...)
}
