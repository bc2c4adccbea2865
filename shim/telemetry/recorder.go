package telemetry

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veil-runtime/veil/shim/api"
)

// RPCBuckets are the upper bounds, in seconds, of the agent request
// histograms: from a quick answer on a host with KVM to a container
// create under TCG on a loaded host.
var RPCBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Stdio streams, as the Stream message names them.
const (
	Stdin  = "stdin"
	Stdout = "stdout"
	Stderr = "stderr"
)

// Recorder collects a shim's figures; it is safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	rpcs map[string]*rpc

	stdin, stdout, stderr atomic.Uint64
}

type rpc struct {
	count, errors uint64
	sum           time.Duration
	buckets       []uint64 // not cumulative; one more for +Inf
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{rpcs: map[string]*rpc{}} }

// ObserveRPC records one agent request (runtime/agentclient's Observer).
func (r *Recorder) ObserveRPC(method string, took time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.rpcs[method]
	if h == nil {
		h = &rpc{buckets: make([]uint64, len(RPCBuckets)+1)}
		r.rpcs[method] = h
	}
	h.count++
	h.sum += took
	if err != nil {
		h.errors++
	}
	i, _ := slices.BinarySearch(RPCBuckets, took.Seconds())
	h.buckets[i]++
}

// Stdio is the counter of stream's bytes (Stdin, Stdout or Stderr); nil
// for another name.
func (r *Recorder) Stdio(stream string) *atomic.Uint64 {
	switch stream {
	case Stdin:
		return &r.stdin
	case Stdout:
		return &r.stdout
	case Stderr:
		return &r.stderr
	}
	return nil
}

// Snapshot is the recorder's figures as the Telemetry service answers.
func (r *Recorder) Snapshot() *api.GetResponse {
	r.mu.Lock()
	defer r.mu.Unlock()
	resp := &api.GetResponse{RpcBucketBounds: slices.Clone(RPCBuckets)}
	for _, m := range slices.Sorted(maps.Keys(r.rpcs)) {
		h := r.rpcs[m]
		cum := make([]uint64, len(RPCBuckets))
		var n uint64
		for i := range RPCBuckets {
			n += h.buckets[i]
			cum[i] = n
		}
		resp.AgentRpcs = append(resp.AgentRpcs, &api.RPC{Method: m, Count: h.count, SumSeconds: h.sum.Seconds(), Buckets: cum, Errors: h.errors})
	}
	for _, s := range []string{Stdin, Stdout, Stderr} {
		resp.Stdio = append(resp.Stdio, &api.Stream{Stream: s, Bytes: r.Stdio(s).Load()})
	}
	return resp
}
