package policy

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Golden fixture cases of rule untrusted.disk-passthrough (testdata/untrusted.disk-passthrough/).
func diskPassthroughCases(add fixtureAdder) {
	const dp = "untrusted.disk-passthrough"
	add(dp, true, "no-disks", win, "no disk mounts", nil, winCreate)
	add(dp, true, "allowed-disk", win, "a virtual disk listed in untrusted.mounts.allowedDisks", nil, func(t testing.TB) Input {
		return withMounts(winCreate(t), specs.Mount{Destination: `C:\scratch`, Type: "virtual-disk", Source: `d:/tenant-disks/SCRATCH.vhdx`})
	})
	for _, c := range []struct{ name, typ, src string }{
		{"physical-disk", "physical-disk", `\\.\PhysicalDrive0`},
		{"virtual-disk", "virtual-disk", `C:\ProgramData\containerd\root\secrets.vhdx`},
		{"extensible-virtual-disk", "extensible-virtual-disk", `evd://space/C:\disks\x.vhdx`},
		{"type-case", "Physical-Disk", `\\.\PhysicalDrive1`},
	} {
		add(dp, false, c.name, win, "Mount.Type "+c.typ+": denied", T("T10"), func(t testing.TB) Input {
			return withMounts(winCreate(t), specs.Mount{Destination: `C:\disk`, Type: c.typ, Source: c.src})
		})
	}
	add(dp, true, "linux-pseudo-fs", lin, "proc, tmpfs, devpts, mqueue, sysfs, cgroup", nil, linuxCreate)
	add(dp, false, "linux-block-device", lin, "an ext4 file system of a host block device", T("T10"), func(t testing.TB) Input {
		return withMounts(linuxCreate(t), specs.Mount{Destination: "/disk", Type: "ext4", Source: "/dev/sda1"})
	})
	add(dp, false, "linux-overlay", lin, "an overlay naming host directories in its options", T("T10"), func(t testing.TB) Input {
		return withMounts(linuxCreate(t), specs.Mount{Destination: "/o", Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/etc"}})
	})
}
