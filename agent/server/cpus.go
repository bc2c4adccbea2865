package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
)

// OnlineCPUs brings offline vCPUs online until r.Count are online.
func (s *Service) OnlineCPUs(ctx context.Context, r *api.OnlineCPUsRequest) (*api.OnlineCPUsResponse, error) {
	n, err := onlineCPUs(ctx, s.cpuRoot, int(r.Count))
	if err != nil {
		return nil, toStatus(err)
	}
	return &api.OnlineCPUsResponse{Online: uint32(n)}, nil
}

// onlineCPUs onlines cpuN under dir (sysfs's /sys/devices/system/cpu),
// lowest first, until want are online, and returns how many are. Asking
// for more than the guest has fails with the number it has.
func onlineCPUs(ctx context.Context, dir string, want int) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("online CPUs: %w", err)
	}
	var ids []int
	for _, e := range entries {
		if n, ok := strings.CutPrefix(e.Name(), "cpu"); ok {
			if id, err := strconv.Atoi(n); err == nil {
				ids = append(ids, id)
			}
		}
	}
	sort.Ints(ids)
	online := 0
	var offline []string
	for _, id := range ids {
		f := filepath.Join(dir, "cpu"+strconv.Itoa(id), "online")
		b, err := os.ReadFile(f)
		// cpu0 has no online file: it is always online.
		if err != nil || strings.TrimSpace(string(b)) == "1" {
			online++
			continue
		}
		offline = append(offline, f)
	}
	if want > len(ids) {
		return online, fmt.Errorf("online %d CPUs: the guest has %d: %w", want, len(ids), errdefs.ErrOutOfRange)
	}
	for _, f := range offline {
		if online >= want {
			break
		}
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			return online, fmt.Errorf("online %s: %w", filepath.Dir(f), err)
		}
		online++
		log.G(ctx).WithField("cpu", filepath.Base(filepath.Dir(f))).Info("vCPU onlined")
	}
	return online, nil
}
