package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an in-memory OCI registry (go-containerregistry's
// pkg/registry) served by this process on 127.0.0.1 inside a network
// namespace, where containerd reaches it through hosts.toml mirrors.
// Manifests and blobs live in memory: they go away with it.
type Registry struct {
	// Addr is host:port inside the network namespace.
	Addr string

	handler http.Handler
	server  *http.Server
	done    chan error
}

// startRegistry listens on 127.0.0.1:0 inside the network namespace at
// nsPath and serves a fresh registry there.
func startRegistry(nsPath string) (*Registry, error) {
	var l net.Listener
	if err := inNetNS(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		return nil, fmt.Errorf("registry listen in %s: %w", nsPath, err)
	}
	r := &Registry{
		Addr:    l.Addr().String(),
		handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		done:    make(chan error, 1),
	}
	r.server = &http.Server{Handler: r.handler, ReadHeaderTimeout: 30 * time.Second}
	go func() { r.done <- r.server.Serve(l) }()
	return r, nil
}

// Push stores img in the registry as ref (e.g. registry.k8s.io/pause:3.10.2),
// under the repository <registry host>/<path> that the mirror of ref's
// registry serves. It talks to the registry in memory, not over the
// network namespace.
func (r *Registry) Push(ctx context.Context, ref string, img v1.Image) error {
	src, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	dst, err := name.ParseReference(mirrorRef(src), name.Insecure)
	if err != nil {
		return fmt.Errorf("mirror reference for %q: %w", ref, err)
	}
	if err := remote.Write(dst, img, remote.WithContext(ctx), remote.WithTransport(handlerTransport{r.handler})); err != nil {
		return fmt.Errorf("push %s to the test registry: %w", ref, err)
	}
	return nil
}

// mirrorRef names ref inside the test registry: the repository is
// prefixed with ref's registry host, which is the path the hosts.toml
// mirror for that host serves (override_path).
func mirrorRef(ref name.Reference) string {
	repo := ref.Context().RegistryStr() + "/" + ref.Context().RepositoryStr()
	if t, ok := ref.(name.Tag); ok {
		return "veil.test/" + repo + ":" + t.TagStr()
	}
	return "veil.test/" + repo + "@" + ref.Identifier()
}

// mirrorHostsTOML is the hosts.toml that sends pulls for host to the
// registry, under the path Push stores host's images at.
func (r *Registry) mirrorHostsTOML(host string) string {
	server := "https://" + host
	if host == "docker.io" {
		server = "https://registry-1.docker.io"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server = %q\n\n", server)
	fmt.Fprintf(&b, "[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n",
		"http://"+r.Addr+"/v2/"+host)
	return b.String()
}

// Close stops serving and drops everything stored.
func (r *Registry) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := r.server.Shutdown(ctx)
	if serveErr := <-r.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("stop test registry %s: %w", r.Addr, err)
	}
	return nil
}

// handlerTransport serves HTTP requests by calling a handler directly.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A server request always has a body; client requests may not.
	in := req.Clone(req.Context())
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, in)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
