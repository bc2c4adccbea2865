package qemu

import (
	"bufio"
	"bytes"
	"os"
	"strings"
)

// DetectAccel picks KVM when the host CPU has hardware virtualization
// (vmx or svm in /proc/cpuinfo) and /dev/kvm opens, TCG otherwise. The CPU
// flag matters: a /dev/kvm backed by software (PVM) cannot run stock
// guests.
func DetectAccel() Accel {
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err == nil {
		_ = f.Close()
	}
	return chooseAccel(cpuinfo, err == nil)
}

func chooseAccel(cpuinfo []byte, kvmOpens bool) Accel {
	if kvmOpens && hasVirtFlag(cpuinfo) {
		return AccelKVM
	}
	return AccelTCG
}

func hasVirtFlag(cpuinfo []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, f := range strings.Fields(val) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}
