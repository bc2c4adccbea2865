package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

const (
	// APIVersion is the version of the agent protocol; it changes when a
	// message or RPC changes incompatibly.
	APIVersion = 1

	// AgentPort is the guest vsock port where the agent serves ttrpc.
	AgentPort = 1024
	// StreamPort is the guest vsock port that accepts stdio stream
	// connections, one per stream of a process.
	StreamPort = 1025
	// ReadyPort is the host vsock port the agent connects to once its
	// listeners accept connections; it writes ReadyMessage and closes.
	// Through a hybrid vsock socket S the host receives it on S_1026.
	// The host dials the agent only after that, never into a guest
	// that has no listener yet.
	ReadyPort = 1026
	// ReadyMessage is what the agent writes on the ready connection.
	ReadyMessage = "READY\n"

	// SharedDir is where the agent mounts the sandbox's virtio-fs share.
	SharedDir = "/run/veil/shared"
	// PodShmDir is the pod's shared /dev/shm in the guest: a tmpfs of
	// CreateSandboxRequest.shm_size_bytes that the agent mounts there.
	PodShmDir = "/run/veil/shm"
	// WarmUpDir is where WarmUp makes its throwaway pod, removed after.
	WarmUpDir = "/run/veil/warmup"
)

// Stream names one standard stream of a process.
type Stream string

const (
	StreamStdin  Stream = "stdin"
	StreamStdout Stream = "stdout"
	StreamStderr Stream = "stderr"
)

// maxHeader bounds the preamble so a broken peer cannot make the agent
// buffer without limit.
const maxHeader = 4096

// StreamHeader is the preamble the host writes as one JSON line on a fresh
// stream connection; after it the connection carries only the stream's
// bytes. ExecID is empty for a container's init process.
type StreamHeader struct {
	ContainerID string `json:"container_id"`
	ExecID      string `json:"exec_id,omitempty"`
	Stream      Stream `json:"stream"`
}

// Validate reports a header that names no process or no known stream.
// The ids must pass ValidateID: a header that names no possible process
// is refused on both ends, and what the host writes (short, plain ASCII)
// always reads back as it was written.
func (h StreamHeader) Validate() error {
	if h.ContainerID == "" {
		return errors.New("stream header: empty container_id")
	}
	if err := ValidateID("container id", h.ContainerID); err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	if h.ExecID != "" {
		if err := ValidateID("exec id", h.ExecID); err != nil {
			return fmt.Errorf("stream header: %w", err)
		}
	}
	switch h.Stream {
	case StreamStdin, StreamStdout, StreamStderr:
		return nil
	default:
		return fmt.Errorf("stream header: unknown stream %q", h.Stream)
	}
}

// WriteStreamHeader writes h as the preamble of a stream connection.
func WriteStreamHeader(w io.Writer, h StreamHeader) error {
	if err := h.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encode stream header: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write stream header: %w", err)
	}
	return nil
}

// ReadStreamHeader reads the preamble of a stream connection. It reads
// byte by byte up to the newline, so no stream data is consumed with it.
func ReadStreamHeader(r io.Reader) (StreamHeader, error) {
	var h StreamHeader
	line, err := readLine(r, maxHeader)
	if err != nil {
		return h, fmt.Errorf("read stream header: %w", err)
	}
	if err := json.Unmarshal(line, &h); err != nil {
		return h, fmt.Errorf("decode stream header %q: %w", line, err)
	}
	return h, h.Validate()
}

func readLine(r io.Reader, limit int) ([]byte, error) {
	var buf []byte
	b := make([]byte, 1)
	for len(buf) < limit {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		if b[0] == '\n' {
			return buf, nil
		}
		buf = append(buf, b[0])
	}
	return nil, fmt.Errorf("header longer than %d bytes", limit)
}
