package hypervisor

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// baseCmdline is the fixed part of the guest kernel command line.
// tsc=reliable, no_timer_check and tsc_early_khz keep TSC calibration from
// hanging on machines (microvm under TCG) that have no HPET or PM timer;
// noreplace-smp skips SMP alternatives patching, which is slow under TCG.
const baseCmdline = "console=ttyS0 quiet panic=-1 tsc=reliable no_timer_check noreplace-smp"

// Cmdline builds the guest kernel command line: the fixed parameters,
// tsc_early_khz when tscKHz is known (non-zero), then extra (the config's
// kernel_params).
func Cmdline(tscKHz uint64, extra string) string {
	parts := []string{baseCmdline}
	if tscKHz > 0 {
		parts = append(parts, fmt.Sprintf("tsc_early_khz=%d", tscKHz))
	}
	if extra = strings.TrimSpace(extra); extra != "" {
		parts = append(parts, extra)
	}
	return strings.Join(parts, " ")
}

// HostTSCKHz reads the host's TSC rate from /proc/cpuinfo.
func HostTSCKHz() (uint64, error) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0, err
	}
	return ParseTSCKHz(b)
}

// ParseTSCKHz returns the first "cpu MHz" of a /proc/cpuinfo text, in kHz.
func ParseTSCKHz(cpuinfo []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "cpu MHz" {
			continue
		}
		mhz, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || mhz <= 0 {
			return 0, fmt.Errorf("cpuinfo: bad cpu MHz %q", strings.TrimSpace(val))
		}
		return uint64(math.Round(mhz * 1000)), nil
	}
	return 0, fmt.Errorf("cpuinfo: no \"cpu MHz\" line")
}
