package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Hypervisor names accepted in hypervisor.name.
const (
	HypervisorQEMU            = "qemu"
	HypervisorCloudHypervisor = "cloud-hypervisor"
	// HypervisorAuto (or an empty name) picks Cloud Hypervisor when the
	// host can run it, else QEMU.
	HypervisorAuto = "auto"
)

// KnownHypervisors are the names hypervisor.name accepts besides auto.
// runtime/hypervisor/registry has one entry for each (its test checks);
// this package cannot import it (the registry builds drivers from a
// Config).
var KnownHypervisors = []string{HypervisorQEMU, HypervisorCloudHypervisor}

// HostFacts is what automatic hypervisor selection looks at.
type HostFacts struct {
	// CloudHypervisor is the cloud-hypervisor binary found; empty when
	// there is none, and then CloudHypervisorErr says why.
	CloudHypervisor    string
	CloudHypervisorErr error
	// CPUVirt reports a vmx or svm flag in /proc/cpuinfo: hardware
	// virtualization, which Cloud Hypervisor needs (a /dev/kvm backed by
	// PVM, without the flags, does not run its guests).
	CPUVirt bool
	// KVM reports that /dev/kvm exists.
	KVM bool
}

// ProbeHost gathers the HostFacts of this machine. chPath is the
// configured cloud_hypervisor_path; empty means cloud-hypervisor on PATH.
func ProbeHost(chPath string) HostFacts {
	var f HostFacts
	f.CloudHypervisor, f.CloudHypervisorErr = findExecutable(chPath)
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		f.CPUVirt = HasCPUVirt(b)
	}
	_, err := os.Stat("/dev/kvm")
	f.KVM = err == nil
	return f
}

// findExecutable resolves the configured binary path, or looks
// cloud-hypervisor up on PATH when path is empty.
func findExecutable(path string) (string, error) {
	if path == "" {
		return exec.LookPath(HypervisorCloudHypervisor)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s: not an executable file", path)
	}
	return path, nil
}

// HasCPUVirt reports whether a /proc/cpuinfo text lists the vmx (Intel
// VT-x) or svm (AMD-V) CPU flag.
func HasCPUVirt(cpuinfo []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, flag := range strings.Fields(val) {
			if flag == "vmx" || flag == "svm" {
				return true
			}
		}
	}
	return false
}

// Select resolves hypervisor.name against the host: "qemu" and
// "cloud-hypervisor" are taken as configured; "auto" or an empty name
// gives cloud-hypervisor when its binary was found, the CPU has vmx or
// svm and /dev/kvm exists, else qemu. reason explains the choice, for the
// log.
func (h Hypervisor) Select(f HostFacts) (name, reason string) {
	if slices.Contains(KnownHypervisors, h.Name) {
		return h.Name, fmt.Sprintf("hypervisor.name is %q", h.Name)
	}
	var missing []string
	if f.CloudHypervisor == "" {
		err := f.CloudHypervisorErr
		if err == nil {
			err = errors.New("not found")
		}
		missing = append(missing, fmt.Sprintf("no cloud-hypervisor binary (%v)", err))
	}
	if !f.CPUVirt {
		missing = append(missing, "no vmx/svm flag in /proc/cpuinfo")
	}
	if !f.KVM {
		missing = append(missing, "no /dev/kvm")
	}
	if len(missing) > 0 {
		return HypervisorQEMU, "auto: " + strings.Join(missing, "; ")
	}
	return HypervisorCloudHypervisor, fmt.Sprintf("auto: %s found, CPU has vmx/svm, /dev/kvm exists", f.CloudHypervisor)
}

// Resolve is Select on this host's facts.
func (h Hypervisor) Resolve() (name, reason string) {
	return h.Select(ProbeHost(h.CloudHypervisorPath))
}
