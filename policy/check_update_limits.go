package policy

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

/*
An Update of an untrusted workload may not raise resources past the policy's limits, and
may carry nothing but resources.

containerd encodes UpdateTaskRequest.Resources with typeurl as JSON of
*specs.WindowsResources or *specs.LinuxResources, type URLs
"types.containerd.io/opencontainers/runtime-spec/1/WindowsResources" /
".../LinuxResources" (core/runtime/typeurl.go, client/task_opts.go WithResources; CRI's
UpdateContainerResources sends exactly these). runhcs also accepts other types in an
Update: ctrdtaskapi.ContainerMount adds a host mount to a running container (a hostPath
bypass) and PolicyFragment injects a confidential-computing policy; those, the other
platform's type and anything undecodable are denied.

An Update of the pod's sandbox task resizes the utility VM (runhcs internal/uvm
update_uvm.go), so its memory is also held to limits.uvmMemoryMB.

**Restricted Fields:**

Windows: resources.memory.limit (bytes), resources.cpu.count, resources.cpu.maximum,
resources.cpu.shares
Linux: resources.memory.limit, resources.cpu.shares, resources.cpu.quota / period,
resources.pids.limit, resources.devices (allow rules), resources.unified
Resources type URL

**Allowed Values:** at most the configured limits (0 = no limit); on Linux an unlimited
value (-1, 0) where a limit is configured is refused; no device allow rules; no unified
(cgroup v2 raw) keys
*/

var ruleUpdateLimits = &rule{
	id:      "untrusted.update-limits",
	threats: []string{"T14"},
	calls:   []Call{CallUpdate},
	action:  "denial",
	summary: "Update resources beyond untrusted.limits, device rules, unified cgroup keys and non-resource payloads (ContainerMount, PolicyFragment, unknown types) are denied",
	check:   checkUpdateLimits,
}

// Resources type URLs (containerd core/runtime/typeurl.go: prefix types.containerd.io,
// runtime-spec major version 1; a test checks specs.VersionMajor).
const (
	TypeURLWindowsResources = "types.containerd.io/opencontainers/runtime-spec/1/WindowsResources"
	TypeURLLinuxResources   = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
)

const mib = 1 << 20

// ceilMiB converts bytes to MiB, rounding up, without overflow.
func ceilMiB(b uint64) uint64 {
	mb := b / mib
	if b%mib != 0 {
		mb++
	}
	return mb
}

func checkUpdateLimits(ev *evaluation) {
	r := ev.in.Resources
	if r == nil {
		return
	}
	want := TypeURLWindowsResources
	if ev.platform == Linux {
		want = TypeURLLinuxResources
	}
	if r.GetTypeUrl() != want {
		ev.deny("resources", "update payload of type %q is not allowed (only %s)", r.GetTypeUrl(), want)
		return
	}
	if ev.platform == Linux {
		var lr specs.LinuxResources
		if err := json.Unmarshal(r.GetValue(), &lr); err != nil {
			ev.deny("resources", "update resources do not decode: %v", err)
			return
		}
		checkLinuxUpdate(ev, &lr)
		return
	}
	var wr specs.WindowsResources
	if err := json.Unmarshal(r.GetValue(), &wr); err != nil {
		ev.deny("resources", "update resources do not decode: %v", err)
		return
	}
	checkWindowsUpdate(ev, &wr)
}

func (ev *evaluation) overLimit(field string, v, limit uint64, unit string) {
	if limit > 0 && v > limit {
		ev.deny(field, "%s %d%s exceeds the limit %d%s", field, v, unit, limit, unit)
	}
}

func checkWindowsUpdate(ev *evaluation, r *specs.WindowsResources) {
	l := ev.p.limits
	if r.Memory != nil && r.Memory.Limit != nil {
		mb := ceilMiB(*r.Memory.Limit)
		ev.overLimit("resources.memory.limit", mb, l.MemoryMB, "MiB")
		if pod := ev.in.Pod; pod != nil && ev.in.ID == pod.SandboxID {
			ev.overLimit("resources.memory.limit", mb, l.UVMMemoryMB, "MiB")
		}
	}
	if c := r.CPU; c != nil {
		if c.Count != nil {
			ev.overLimit("resources.cpu.count", *c.Count, l.CPUCount, "")
		}
		if c.Maximum != nil {
			ev.overLimit("resources.cpu.maximum", uint64(*c.Maximum), l.CPUMaximum, "")
		}
		if c.Shares != nil {
			ev.overLimit("resources.cpu.shares", uint64(*c.Shares), l.CPUShares, "")
		}
	}
}

func checkLinuxUpdate(ev *evaluation, r *specs.LinuxResources) {
	l := ev.p.limits
	if m := r.Memory; m != nil && m.Limit != nil && l.MemoryMB > 0 {
		if *m.Limit <= 0 {
			ev.deny("resources.memory.limit", "an unlimited memory limit (%d) is not allowed", *m.Limit)
		} else {
			ev.overLimit("resources.memory.limit", ceilMiB(uint64(*m.Limit)), l.MemoryMB, "MiB")
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			ev.overLimit("resources.cpu.shares", *c.Shares, l.CPUShares, "")
		}
		if c.Quota != nil && l.CPUCount > 0 {
			period := uint64(100000)
			if c.Period != nil && *c.Period > 0 {
				period = *c.Period
			}
			switch q := *c.Quota; {
			case q <= 0:
				ev.deny("resources.cpu.quota", "an unlimited CPU quota (%d) is not allowed", q)
			case uint64(q) > l.CPUCount*period:
				ev.deny("resources.cpu.quota", "CPU quota %d/%d (%.2f CPUs) exceeds the limit of %d CPUs", q, period, float64(q)/float64(period), l.CPUCount)
			}
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil && l.Pids > 0 {
		switch {
		case *p.Limit <= 0:
			ev.deny("resources.pids.limit", "an unlimited pids limit (%d) is not allowed", *p.Limit)
		case *p.Limit > l.Pids:
			ev.deny("resources.pids.limit", "resources.pids.limit %d exceeds the limit %d", *p.Limit, l.Pids)
		}
	}
	for i, d := range r.Devices {
		if d.Allow {
			ev.deny(fmt.Sprintf("resources.devices[%d]", i), "an update may not allow devices (%s)", deviceRuleString(d.Type, d.Major, d.Minor, d.Access))
		}
	}
	if len(r.Unified) > 0 {
		ev.deny("resources.unified", "raw cgroup v2 settings (%d keys) are not allowed in an update", len(r.Unified))
	}
}
