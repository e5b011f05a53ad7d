package policy

import (
	"fmt"
	"slices"
)

/*
Untrusted workloads get no devices unless untrusted.devices.allowed names them.

Windows: spec.windows.devices (CRI device host_path "IDType://ID", e.g. a GPU device
interface class) are assigned into the container or utility VM; each must be listed as
"IDType://ID" (compared case-insensitively).

Linux: spec.linux.devices (device nodes the runtime creates) must be listed by path; the
device cgroup rules spec.linux.resources.devices may only allow what containerd's default
spec allows (oci.WithDefaultUnixDevices: null, zero, full, random, urandom, tty, console,
ptmx and the pts range 136:*) or a device of spec.linux.devices that is allowed (same type,
major and minor). A wildcard allow rule ("a", or no major/minor outside the pts range) is
what privileged containers get: denied.

**Restricted Fields:**

spec.windows.devices[*]
spec.linux.devices[*].path
spec.linux.resources.devices[*] with allow: true

**Allowed Values:** listed devices; on Linux the default device cgroup rules
*/

var ruleDevices = &rule{
	id:      "untrusted.devices",
	threats: []string{"T10"},
	calls:   []Call{CallStart, CallCreate},
	action:  "denial",
	summary: "device assignment (spec.windows.devices; spec.linux.devices and device cgroup allow rules) is denied unless untrusted.devices.allowed names the device",
	check:   checkDevices,
}

func checkDevices(ev *evaluation) {
	s := ev.in.Spec
	if ev.platform == Windows {
		if s.Windows == nil {
			return
		}
		for i, d := range s.Windows.Devices {
			if !slices.Contains(ev.p.devices, windowsDeviceKey(d.IDType, d.ID)) {
				ev.deny(fmt.Sprintf("windows.devices[%d]", i), "device %s://%s is not allowed", d.IDType, d.ID)
			}
		}
		return
	}
	if s.Linux == nil {
		return
	}
	type devNo struct {
		typ          string
		major, minor int64
	}
	var allowedNodes []devNo
	for i, d := range s.Linux.Devices {
		if p, err := parseLinuxPath(d.Path); err != nil || !slices.Contains(ev.p.devices, p.String(Linux)) {
			ev.deny(fmt.Sprintf("linux.devices[%d]", i), "device %s is not allowed", d.Path)
			continue
		}
		allowedNodes = append(allowedNodes, devNo{d.Type, d.Major, d.Minor})
	}
	if s.Linux.Resources == nil {
		return
	}
	for i, r := range s.Linux.Resources.Devices {
		if !r.Allow || isDefaultDeviceRule(r.Type, r.Major, r.Minor) {
			continue
		}
		ok := r.Type != "" && r.Type != "a" && r.Major != nil && r.Minor != nil &&
			slices.Contains(allowedNodes, devNo{r.Type, *r.Major, *r.Minor})
		if !ok {
			ev.deny(fmt.Sprintf("linux.resources.devices[%d]", i), "device cgroup rule allowing %s is not allowed", deviceRuleString(r.Type, r.Major, r.Minor, r.Access))
		}
	}
}

// isDefaultDeviceRule: the allow rules of containerd's default spec
// (pkg/oci/spec_opts.go WithDefaultUnixDevices), any access.
func isDefaultDeviceRule(typ string, major, minor *int64) bool {
	if typ != "c" || major == nil {
		return false
	}
	if minor == nil {
		return *major == 136 // /dev/pts/*
	}
	switch [2]int64{*major, *minor} {
	case [2]int64{1, 3}, [2]int64{1, 8}, [2]int64{1, 7}, [2]int64{5, 0}, [2]int64{1, 5}, [2]int64{1, 9}, [2]int64{5, 1}, [2]int64{5, 2}:
		return true
	}
	return false
}

func deviceRuleString(typ string, major, minor *int64, access string) string {
	n := func(p *int64) string {
		if p == nil {
			return "*"
		}
		return fmt.Sprint(*p)
	}
	if typ == "" {
		typ = "a"
	}
	return fmt.Sprintf("%s %s:%s %s", typ, n(major), n(minor), access)
}
