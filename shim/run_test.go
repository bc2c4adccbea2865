package shim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/shim/bundle"
	"github.com/veil-runtime/veil/shim/task"
)

// discard is an event publisher that drops events.
type discard struct{}

func (discard) Publish(context.Context, string, events.Event) error { return nil }

// neverShutdown is a shim shutdown service that never shuts down by itself.
type neverShutdown struct{ done chan struct{} }

func (s *neverShutdown) Shutdown()                                    {}
func (s *neverShutdown) RegisterCallback(func(context.Context) error) {}
func (s *neverShutdown) Done() <-chan struct{}                        { return s.done }

// TestCreateRefusesUnknownAnnotation: the task service with the VM
// launcher, as Run wires them, refuses a bad annotation before starting
// anything, and Create returns the message as InvalidArgument, which is
// what ctr prints.
func TestCreateRefusesUnknownAnnotation(t *testing.T) {
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), "test"))
	t.Cleanup(cancel)
	// The defaults: an empty config file.
	empty := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvPath, empty)
	l, err := newLauncher()
	if err != nil {
		t.Fatal(err)
	}
	sd := &neverShutdown{done: make(chan struct{})}
	t.Cleanup(func() { close(sd.done) })
	svc := task.NewService(ctx, l, discard{}, sd)
	dir := t.TempDir()
	spec := `{"ociVersion":"1.0.2","annotations":{"io.veil.config.guest.memory":"512"}}`
	if err := os.WriteFile(filepath.Join(dir, bundle.SpecFile), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: dir})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("code %s (%v), want InvalidArgument", status.Code(err), err)
	}
	// Error details would make ctr print one extra line per wrapped error.
	if d := status.Convert(err).Details(); len(d) != 0 {
		t.Errorf("status carries details %v", d)
	}
	for _, w := range []string{"start sandbox c1", `invalid io.veil annotation: "io.veil.config.guest.memory" is not allowed`, "io.veil.config.guest.memory_mib"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	t.Logf("ctr would print: %v", err)
}
