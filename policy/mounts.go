package policy

import (
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/isoguard/isoguard/internal/cri"
)

// Mount classification shared by untrusted.hostpath, untrusted.named-pipe and
// untrusted.disk-passthrough: each mount belongs to exactly one of them.

type mountClass int

const (
	mountHostPath  mountClass = iota // a host directory or file: untrusted.hostpath
	mountBadSource                   // a source that is not a usable absolute path: untrusted.hostpath
	mountBadType                     // Windows: a type runhcs does not mount for Hyper-V: untrusted.hostpath
	mountScheme                      // hcsshim pseudo-source (sandbox://, uvm://, ...): untrusted.hostpath
	mountPipe                        // Windows named pipe: untrusted.named-pipe
	mountDisk                        // disk passthrough / filesystem of a device: untrusted.disk-passthrough
	mountPseudo                      // Linux kernel pseudo file system (proc, tmpfs, ...): nothing from the host
)

// hcsshim's disk mount types (internal/hcsoci/resources.go).
const (
	mountTypePhysicalDisk          = "physical-disk"
	mountTypeVirtualDisk           = "virtual-disk"
	mountTypeExtensibleVirtualDisk = "extensible-virtual-disk"
)

type mountInfo struct {
	class mountClass
	path  hostPath
	err   error
}

func classifyMount(platform Platform, m *specs.Mount) mountInfo {
	if platform == Linux {
		return classifyLinuxMount(m)
	}
	switch {
	case strings.EqualFold(m.Type, mountTypePhysicalDisk), strings.EqualFold(m.Type, mountTypeVirtualDisk), strings.EqualFold(m.Type, mountTypeExtensibleVirtualDisk):
		return mountInfo{class: mountDisk}
	case m.Type != "":
		return mountInfo{class: mountBadType}
	}
	p, kind, err := parseWindowsPath(m.Source)
	switch {
	case kind == kindPipe:
		return mountInfo{class: mountPipe}
	case kind == kindScheme:
		return mountInfo{class: mountScheme}
	case err != nil:
		return mountInfo{class: mountBadSource, err: err}
	}
	return mountInfo{class: mountHostPath, path: p}
}

// linuxPseudoFS are file systems whose source names no host object.
func isLinuxPseudoFS(t string) bool {
	switch t {
	case "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2":
		return true
	}
	return false
}

func classifyLinuxMount(m *specs.Mount) mountInfo {
	bind := m.Type == "bind" || m.Type == "rbind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
	switch {
	case bind:
		p, err := parseLinuxPath(m.Source)
		if err != nil {
			return mountInfo{class: mountBadSource, err: err}
		}
		return mountInfo{class: mountHostPath, path: p}
	case isLinuxPseudoFS(m.Type):
		return mountInfo{class: mountPseudo}
	}
	return mountInfo{class: mountDisk}
}

// mountPlaceholders are the values for allowedHostPaths placeholders: the pinned pod's
// identity when there is a pod, else the input's own (at start).
func (ev *evaluation) mountPlaceholders() placeholders {
	ph := placeholders{podUID: ev.id.kubePodUID, containerID: ev.in.ID}
	if ev.in.Role == cri.RoleSandbox || ev.in.Role == cri.RoleContainer {
		ph.sandboxID = ev.in.SandboxID
	}
	if pod := ev.in.Pod; pod != nil {
		ph.podUID = pod.KubePodUID
		if ev.in.Role == cri.RoleSandbox || ev.in.Role == cri.RoleContainer {
			ph.sandboxID = pod.SandboxID
		}
	}
	if ev.id.key.kind != tenantKubernetes {
		ph.podUID = "" // only a CRI pod has a kubelet directory
	}
	return ph
}

// mountInfos classifies the input spec's mounts once per evaluation (the three mount
// rules share it; it depends on the input only).
func (ev *evaluation) mountInfos() []mountInfo {
	if ev.mounts == nil {
		ev.mounts = make([]mountInfo, len(ev.in.Spec.Mounts))
		for i := range ev.in.Spec.Mounts {
			ev.mounts[i] = classifyMount(ev.platform, &ev.in.Spec.Mounts[i])
		}
	}
	return ev.mounts
}
