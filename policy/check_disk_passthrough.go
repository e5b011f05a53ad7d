package policy

import "fmt"

/*
Untrusted workloads may not pass disks through, unless untrusted.mounts.allowedDisks names
the exact source. On Windows runhcs hot-adds a SCSI disk to the utility VM for mount types
physical-disk, virtual-disk and extensible-virtual-disk (internal/hcsoci/resources.go,
resources_wcow.go): the source is a host disk or image file. On Linux any mount that is
neither a bind mount nor a kernel pseudo file system (proc, sysfs, tmpfs, devpts, mqueue,
cgroup, cgroup2) mounts a device or a file system image (or, like overlay, names host paths
in its options).

**Restricted Fields:**

spec.mounts[*].type, spec.mounts[*].source

**Allowed Values:** Windows: no disk type, or a source listed in allowedDisks (compared
case-insensitively, "/" read as "\"); Linux: bind or pseudo file systems, or a source listed
in allowedDisks
*/

var ruleDiskPassthrough = &rule{
	id:      "untrusted.disk-passthrough",
	threats: []string{"T10"},
	calls:   []Call{CallStart, CallCreate},
	action:  "denial",
	summary: "disk mounts (Windows physical-disk, virtual-disk, extensible-virtual-disk; Linux device/file system mounts) are denied unless untrusted.mounts.allowedDisks names the source",
	check:   checkDiskPassthrough,
}

func checkDiskPassthrough(ev *evaluation) {
	for i := range ev.in.Spec.Mounts {
		m := &ev.in.Spec.Mounts[i]
		if ev.mountInfos()[i].class != mountDisk {
			continue
		}
		src := normalizeDisk(ev.platform, m.Source)
		allowed := false
		for _, d := range ev.p.disks {
			if ev.platform == Linux && d == src || ev.platform == Windows && foldEqual(d, src) {
				allowed = true
				break
			}
		}
		if !allowed {
			ev.deny(fmt.Sprintf("mounts[%d]", i), "mount of %s of type %q (disk passthrough) is not allowed", m.Source, m.Type)
		}
	}
}
