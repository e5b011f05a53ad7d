package policy

import (
	"fmt"
	"strconv"
)

/*
Untrusted workloads mount host paths only below the prefixes of
untrusted.mounts.allowedHostPaths (default: the pod's own kubelet directory, the
container's image-volume directory, and on Linux the pod's CRI sandbox directories).
runhcs shares every plain host path into the utility VM over VSMB, writable unless "ro"
(internal/hcsoci/resources_wcow.go setupMounts): Hyper-V does not protect what is mounted.

Paths are normalised lexically before the comparison (paths.go): "/" and "\", runs of
separators, trailing separators, "." and ".." (Windows; on Linux ".." is refused, since
after a symbolic link it does not lead where it seems to), \\?\ \\.\ \??\ prefixes,
\\?\UNC\, UNC shares, and drive letter case; drive-relative, rooted and relative paths,
device paths, reserved DOS names, alternate data streams and elements Win32 would trim are
refused; Windows compares ASCII case-insensitively, Linux exactly. 8.3 short names
(an element with "~" followed by a digit, e.g. PROGRA~1) cannot be resolved without the
file system: one below an allowed prefix is refused, since it could name a different
directory than the string suggests, and the audit record would then mislead; containerd's
CRI plugin resolves and cleans host paths before they get here, so real pods never carry
one. (Symbolic links and junctions below an allowed prefix are beyond a pure policy: the
allowed directories must not be writable by the host's tenants' processes - containerd
resolves links in a source when it builds the spec.)

Sources that are not host paths are refused here as well: hcsshim pseudo-sources
(sandbox://, sandbox-tmp://, uvm://, hugepages://, blockdev://) and, on Windows, mount
types other than the plain type (runhcs refuses them for Hyper-V isolation anyway). Named
pipes and disks have their own rules.

**Restricted Fields:**

spec.mounts[*].source (Windows: type ""; Linux: bind mounts)
spec.mounts[*].type (Windows)

**Allowed Values:** an absolute host path at or below an allowedHostPaths prefix, with no 8.3
short-name element below the prefix
*/

var ruleHostPath = &rule{
	id:      "untrusted.hostpath",
	threats: []string{"T8"},
	calls:   []Call{CallStart, CallCreate},
	action:  "denial",
	summary: "host path mounts only below untrusted.mounts.allowedHostPaths (default: the pod's own kubelet directory), after lexical normalisation",
	check:   checkHostPath,
}

func checkHostPath(ev *evaluation) {
	ph := ev.mountPlaceholders()
	for i := range ev.in.Spec.Mounts {
		m := &ev.in.Spec.Mounts[i]
		mi := ev.mountInfos()[i]
		field := "mounts[" + strconv.Itoa(i) + "].source"
		switch mi.class {
		case mountBadType:
			ev.deny(fmt.Sprintf("mounts[%d].type", i), "mount %s of type %q is not allowed (only plain host paths; disks have their own rule)", m.Source, m.Type)
		case mountScheme:
			ev.deny(field, "mount %s (a runtime pseudo-source) is not allowed", m.Source)
		case mountBadSource:
			ev.deny(field, "mount %s is not allowed: %v", m.Source, mi.err)
		case mountHostPath:
			checkHostPathAllowed(ev, field, m.Source, mi.path, ph)
		}
	}
}

func checkHostPathAllowed(ev *evaluation, field, src string, p hostPath, ph placeholders) {
	for i := range ev.p.hostPaths {
		pp := &ev.p.hostPaths[i]
		if !pp.match(ev.platform, p, ph) {
			continue
		}
		if ev.platform == Windows {
			for _, e := range p.elems[len(pp.elems):] {
				if hasShortNameElem(e) {
					ev.deny(field, "mount %s is not allowed: element %q looks like an 8.3 short name, which the policy cannot resolve", src, e)
					return
				}
			}
		}
		return
	}
	shown := src
	if n := p.String(ev.platform); n != src {
		shown = fmt.Sprintf("%s (%s)", src, n)
	}
	ev.deny(field, "mount %s is not allowed", shown)
}
