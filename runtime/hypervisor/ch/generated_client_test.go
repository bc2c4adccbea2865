package ch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"

	"github.com/veil-runtime/veil/generated/client"
	"github.com/veil-runtime/veil/generated/client/operations"
	"github.com/veil-runtime/veil/generated/models"
)

// stubAPI serves a few Cloud Hypervisor endpoints on a Unix socket in a
// temporary directory and returns the socket path. Each request's method,
// path and body are recorded for the test to inspect.
type stubAPI struct {
	lastMethod, lastPath, lastBody string
}

func (f *stubAPI) serve(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ch.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("listen on %s: %v", sock, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/vmm.ping", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"build_version":"v53.0","version":"53.0.0","pid":4242,"features":["kvm","io_uring"]}`)
	})
	mux.HandleFunc("PUT /api/v1/vm.create", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/v1/vm.boot", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		w.WriteHeader(http.StatusNotFound)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return sock
}

func (f *stubAPI) record(r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.lastMethod, f.lastPath, f.lastBody = r.Method, r.URL.Path, string(body)
}

// stubClient builds the generated client over an http.Transport whose
// DialContext always dials sock, the way Veil talks to --api-socket.
func stubClient(t *testing.T, sock string) *client.CloudHypervisor {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	rt := httptransport.NewWithClient(client.DefaultHost, client.DefaultBasePath, client.DefaultSchemes, &http.Client{Transport: tr})
	return client.New(rt, strfmt.Default)
}

func TestGeneratedClientOverUnixSocket(t *testing.T) {
	str := func(s string) *string { return &s }
	i64 := func(v int64) *int64 { return &v }

	cases := []struct {
		name       string
		call       func(ctx context.Context, c *client.CloudHypervisor) error
		wantMethod string
		wantPath   string
		checkBody  func(t *testing.T, body string)
	}{
		{
			name:       "ping decodes VmmPingResponse",
			wantMethod: http.MethodGet,
			wantPath:   "/api/v1/vmm.ping",
			call: func(ctx context.Context, c *client.CloudHypervisor) error {
				ok, err := c.Operations.PingVMMContext(ctx, operations.NewPingVMMParams())
				if err != nil {
					return err
				}
				p := ok.GetPayload()
				if p == nil || p.Version == nil || *p.Version != "53.0.0" || p.BuildVersion != "v53.0" || p.Pid != 4242 ||
					strings.Join(p.Features, ",") != "kvm,io_uring" {
					return errors.New("unexpected ping payload: " + mustJSON(p))
				}
				return nil
			},
		},
		{
			name:       "create sends VmConfig and omits unset fields",
			wantMethod: http.MethodPut,
			wantPath:   "/api/v1/vm.create",
			call: func(ctx context.Context, c *client.CloudHypervisor) error {
				cfg := &models.VMConfig{
					Payload: &models.PayloadConfig{Kernel: "/k/vmlinux", Cmdline: "console=hvc0"},
					Cpus:    &models.CpusConfig{BootVcpus: i64(1), MaxVcpus: i64(2)},
					Memory:  &models.MemoryConfig{Size: i64(256 << 20)},
					Vsock:   &models.VsockConfig{Cid: i64(3), Socket: str("/run/v.sock")},
				}
				_, err := c.Operations.CreateVMContext(ctx, operations.NewCreateVMParams().WithBody(cfg))
				return err
			},
			checkBody: func(t *testing.T, body string) {
				var got map[string]any
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatalf("request body is not JSON: %v: %s", err, body)
				}
				for _, key := range []string{"payload", "cpus", "memory", "vsock"} {
					if _, ok := got[key]; !ok {
						t.Errorf("body lacks %q: %s", key, body)
					}
				}
				for _, key := range []string{"disks", "net", "fs", "devices", "numa"} {
					if _, ok := got[key]; ok {
						t.Errorf("body carries unset array %q (CH may reject null): %s", key, body)
					}
				}
			},
		},
		{
			name:       "boot 404 maps to BootVMNotFound",
			wantMethod: http.MethodPut,
			wantPath:   "/api/v1/vm.boot",
			call: func(ctx context.Context, c *client.CloudHypervisor) error {
				_, err := c.Operations.BootVMContext(ctx, operations.NewBootVMParams())
				var notFound *operations.BootVMNotFound
				if !errors.As(err, &notFound) {
					return errors.New("want *operations.BootVMNotFound, got " + errString(err))
				}
				return nil
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var vmm stubAPI
			cl := stubClient(t, vmm.serve(t))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.call(ctx, cl); err != nil {
				t.Fatal(err)
			}
			if vmm.lastMethod != c.wantMethod || vmm.lastPath != c.wantPath {
				t.Errorf("server saw %s %s, want %s %s", vmm.lastMethod, vmm.lastPath, c.wantMethod, c.wantPath)
			}
			if c.checkBody != nil {
				c.checkBody(t, vmm.lastBody)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}
