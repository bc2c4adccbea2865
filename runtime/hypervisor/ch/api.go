package ch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"

	"github.com/veil-runtime/veil/generated/client"
	"github.com/veil-runtime/veil/generated/client/operations"
	"github.com/veil-runtime/veil/generated/models"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// vmmAPI is the part of Cloud Hypervisor's HTTP API the driver uses. The
// generated client and its types stay behind it, inside this package.
// Every method is bounded by ctx and by the client's per-call timeout;
// errors name the endpoint (and carry an *APIError when CH answered).
type vmmAPI interface {
	// Ping is vmm.ping: the API server answers.
	Ping(ctx context.Context) (*models.VmmPingResponse, error)
	// Create is vm.create: define the VM without booting it.
	Create(ctx context.Context, cfg *models.VMConfig) error
	// Boot is vm.boot.
	Boot(ctx context.Context) error
	// Info is vm.info.
	Info(ctx context.Context) (*models.VMInfo, error)
	// ShutdownVMM is vmm.shutdown: the VMM stops the VM and exits.
	ShutdownVMM(ctx context.Context) error
	// AddDisk is vm.add-disk.
	AddDisk(ctx context.Context, d *models.DiskConfig) (*models.PciDeviceInfo, error)
	// AddNet is vm.add-net.
	AddNet(ctx context.Context, n *models.NetConfig) (*models.PciDeviceInfo, error)
	// AddFs is vm.add-fs.
	AddFs(ctx context.Context, fs *models.FsConfig) (*models.PciDeviceInfo, error)
	// RemoveDevice is vm.remove-device.
	RemoveDevice(ctx context.Context, id string) error
	// Resize is vm.resize (one attempt; 429 is an *APIError).
	Resize(ctx context.Context, r *models.VMResize) error
	// Pause is vm.pause.
	Pause(ctx context.Context) error
	// Resume is vm.resume.
	Resume(ctx context.Context) error
	// Snapshot is vm.snapshot.
	Snapshot(ctx context.Context, destinationURL string) error
	// Restore is vm.restore.
	Restore(ctx context.Context, rc *models.RestoreConfig) error
	// Counters is vm.counters.
	Counters(ctx context.Context) (models.VMCounters, error)
}

// APIError is a Cloud Hypervisor answer with a status other than 2xx.
type APIError struct {
	// Endpoint is the API endpoint, e.g. "vm.create".
	Endpoint string
	// Code is the HTTP status code.
	Code int
	// Body is CH's response body (its error text), trimmed.
	Body string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("cloud-hypervisor %s: %d %s", e.Endpoint, e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// maxErrorBody bounds how much of an error answer is kept.
const maxErrorBody = 4 << 10

// httpAPI implements vmmAPI with the generated client over the API socket.
type httpAPI struct {
	ops     operations.ClientService
	tr      *http.Transport
	timeout time.Duration
}

var _ vmmAPI = (*httpAPI)(nil)

// newHTTPAPI returns a client for the API socket at sock whose every call
// is bounded by timeout (and by the caller's ctx).
func newHTTPAPI(sock string, timeout time.Duration) *httpAPI {
	tr := &http.Transport{
		// The API socket lies in the jail uid's helper directory: never
		// follow a name found there.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return statedir.DialUnix(ctx, sock)
		},
		// One connection per call: a call abandoned on timeout must not
		// leave a half-read connection for the next one.
		DisableKeepAlives: true,
	}
	rt := httptransport.NewWithClient(client.DefaultHost, client.DefaultBasePath, client.DefaultSchemes, &http.Client{Transport: tr})
	// Error answers reach captureErrors whatever their content type.
	rt.Consumers["*/*"] = runtime.ByteStreamConsumer()
	return &httpAPI{ops: client.New(rt, strfmt.Default).Operations, tr: tr, timeout: timeout}
}

// Close releases idle connections.
func (a *httpAPI) Close() { a.tr.CloseIdleConnections() }

// call runs one API call bounded by the per-call timeout and gives its
// error the endpoint's name.
func (a *httpAPI) call(ctx context.Context, endpoint string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	err := fn(ctx)
	if err == nil {
		return nil
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("cloud-hypervisor %s: no answer within %v: %w", endpoint, a.timeout, err)
	}
	return fmt.Errorf("cloud-hypervisor %s: %w", endpoint, err)
}

// captureErrors is a client option that turns every non-2xx answer into
// an *APIError holding the status and body; the generated error types do
// not keep the body.
func captureErrors(op *runtime.ClientOperation) {
	inner := op.Reader
	endpoint := strings.TrimPrefix(op.PathPattern, "/")
	op.Reader = runtime.ClientResponseReaderFunc(func(resp runtime.ClientResponse, cons runtime.Consumer) (any, error) {
		if code := resp.Code(); code >= 200 && code < 300 {
			return inner.ReadResponse(resp, cons)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body(), maxErrorBody))
		return nil, &APIError{Endpoint: endpoint, Code: resp.Code(), Body: strings.TrimSpace(string(bytes.ToValidUTF8(body, []byte("?"))))}
	})
}

func (a *httpAPI) Ping(ctx context.Context) (out *models.VmmPingResponse, err error) {
	err = a.call(ctx, "vmm.ping", func(ctx context.Context) error {
		ok, err := a.ops.PingVMMContext(ctx, operations.NewPingVMMParams(), captureErrors)
		if err == nil {
			out = ok.GetPayload()
		}
		return err
	})
	return out, err
}

func (a *httpAPI) Create(ctx context.Context, cfg *models.VMConfig) error {
	return a.call(ctx, "vm.create", func(ctx context.Context) error {
		_, err := a.ops.CreateVMContext(ctx, operations.NewCreateVMParams().WithBody(cfg), captureErrors)
		return err
	})
}

func (a *httpAPI) Boot(ctx context.Context) error {
	return a.call(ctx, "vm.boot", func(ctx context.Context) error {
		_, err := a.ops.BootVMContext(ctx, operations.NewBootVMParams(), captureErrors)
		return err
	})
}

func (a *httpAPI) Info(ctx context.Context) (out *models.VMInfo, err error) {
	err = a.call(ctx, "vm.info", func(ctx context.Context) error {
		ok, err := a.ops.GetVMInfoContext(ctx, operations.NewGetVMInfoParams(), captureErrors)
		if err == nil {
			out = ok.GetPayload()
		}
		return err
	})
	return out, err
}

func (a *httpAPI) ShutdownVMM(ctx context.Context) error {
	return a.call(ctx, "vmm.shutdown", func(ctx context.Context) error {
		_, err := a.ops.ShutdownVMMContext(ctx, operations.NewShutdownVMMParams(), captureErrors)
		return err
	})
}

func (a *httpAPI) AddDisk(ctx context.Context, d *models.DiskConfig) (out *models.PciDeviceInfo, err error) {
	err = a.call(ctx, "vm.add-disk", func(ctx context.Context) error {
		ok, _, err := a.ops.AddDiskVMContext(ctx, operations.NewAddDiskVMParams().WithBody(d), captureErrors)
		if ok != nil {
			out = ok.GetPayload()
		}
		return err
	})
	return out, err
}

func (a *httpAPI) AddNet(ctx context.Context, n *models.NetConfig) (out *models.PciDeviceInfo, err error) {
	err = a.call(ctx, "vm.add-net", func(ctx context.Context) error {
		ok, _, err := a.ops.AddNetVMContext(ctx, operations.NewAddNetVMParams().WithBody(n), captureErrors)
		if ok != nil {
			out = ok.GetPayload()
		}
		return err
	})
	return out, err
}

func (a *httpAPI) AddFs(ctx context.Context, fs *models.FsConfig) (out *models.PciDeviceInfo, err error) {
	err = a.call(ctx, "vm.add-fs", func(ctx context.Context) error {
		ok, _, err := a.ops.AddFsVMContext(ctx, operations.NewAddFsVMParams().WithBody(fs), captureErrors)
		if ok != nil {
			out = ok.GetPayload()
		}
		return err
	})
	return out, err
}

func (a *httpAPI) RemoveDevice(ctx context.Context, id string) error {
	return a.call(ctx, "vm.remove-device", func(ctx context.Context) error {
		_, err := a.ops.RemoveDeviceVMContext(ctx, operations.NewRemoveDeviceVMParams().WithBody(&models.VMRemoveDevice{ID: id}), captureErrors)
		return err
	})
}

func (a *httpAPI) Resize(ctx context.Context, r *models.VMResize) error {
	return a.call(ctx, "vm.resize", func(ctx context.Context) error {
		_, err := a.ops.ResizeVMContext(ctx, operations.NewResizeVMParams().WithBody(r), captureErrors)
		return err
	})
}

func (a *httpAPI) Pause(ctx context.Context) error {
	return a.call(ctx, "vm.pause", func(ctx context.Context) error {
		_, err := a.ops.PauseVMContext(ctx, operations.NewPauseVMParams(), captureErrors)
		return err
	})
}

func (a *httpAPI) Resume(ctx context.Context) error {
	return a.call(ctx, "vm.resume", func(ctx context.Context) error {
		_, err := a.ops.ResumeVMContext(ctx, operations.NewResumeVMParams(), captureErrors)
		return err
	})
}

func (a *httpAPI) Snapshot(ctx context.Context, destinationURL string) error {
	return a.call(ctx, "vm.snapshot", func(ctx context.Context) error {
		_, err := a.ops.SnapshotVMContext(ctx, operations.NewSnapshotVMParams().WithBody(&models.VMSnapshotConfig{DestinationURL: destinationURL}), captureErrors)
		return err
	})
}

func (a *httpAPI) Restore(ctx context.Context, rc *models.RestoreConfig) error {
	return a.call(ctx, "vm.restore", func(ctx context.Context) error {
		_, err := a.ops.RestoreVMContext(ctx, operations.NewRestoreVMParams().WithBody(rc), captureErrors)
		return err
	})
}

func (a *httpAPI) Counters(ctx context.Context) (out models.VMCounters, err error) {
	err = a.call(ctx, "vm.counters", func(ctx context.Context) error {
		ok, err := a.ops.GetVMCountersContext(ctx, operations.NewGetVMCountersParams(), captureErrors)
		if err == nil {
			out = ok.GetPayload()
		}
		return err
	})
	return out, err
}
