package harness

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/log"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRIClient is a CRI v1 gRPC client on a harness containerd's socket.
type CRIClient struct {
	Runtime runtimeapi.RuntimeServiceClient
	Image   runtimeapi.ImageServiceClient
	conn    *grpc.ClientConn
}

// CRIEndpoint is the CRI endpoint (unix://<socket>) for crictl and
// critest's -runtime-endpoint / -image-endpoint.
func (c *Containerd) CRIEndpoint() string { return "unix://" + c.Address }

// CRIClient returns a CRI client on this containerd (started with
// Options.CRI). Close it when done.
func (c *Containerd) CRIClient() (*CRIClient, error) {
	if c.cri == nil {
		return nil, errors.New("containerd was started without Options.CRI: its CRI plugin is disabled")
	}
	conn, err := grpc.NewClient(c.CRIEndpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("CRI client on %s: %w", c.Address, err)
	}
	return &CRIClient{
		Runtime: runtimeapi.NewRuntimeServiceClient(conn),
		Image:   runtimeapi.NewImageServiceClient(conn),
		conn:    conn,
	}, nil
}

// Close closes the client's connection.
func (c *CRIClient) Close() error { return c.conn.Close() }

// RemovePods stops and removes every pod sandbox through CRI, so that
// CNI tears down their networks and the shims stop their pods; each call
// is bounded by a minute.
func (c *Containerd) RemovePods(ctx context.Context) error {
	cl, err := c.CRIClient()
	if err != nil {
		return err
	}
	defer func() { _ = cl.Close() }()
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	resp, err := cl.Runtime.ListPodSandbox(lctx, &runtimeapi.ListPodSandboxRequest{})
	cancel()
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	var errs []error
	for _, p := range resp.GetItems() {
		log.G(ctx).WithField("pod", p.GetId()).Info("harness: removing leftover pod sandbox")
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		if _, err := cl.Runtime.StopPodSandbox(pctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("stop pod sandbox %s: %w", p.GetId(), err))
		}
		if _, err := cl.Runtime.RemovePodSandbox(pctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("remove pod sandbox %s: %w", p.GetId(), err))
		}
		cancel()
	}
	return errors.Join(errs...)
}
