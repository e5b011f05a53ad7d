package policy

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Golden fixture cases of rule untrusted.devices (testdata/untrusted.devices/).
func devicesCases(add fixtureAdder) {
	const dev = "untrusted.devices"
	add(dev, true, "no-devices", win, "no devices", nil, winCreate)
	add(dev, true, "allowed-device", win, "a device interface class on untrusted.devices.allowed (other letter case)", nil, func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Windows.Devices = []specs.WindowsDevice{{IDType: "class", ID: "5b45201d-f2f2-4f3b-85bb-30ff1f953599"}}
		return in
	})
	add(dev, false, "gpu-class", win, "a GPU device interface class not on the allowlist", T("T10"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Windows.Devices = []specs.WindowsDevice{{IDType: "class", ID: "5B45201D-F2F2-4F3B-85BB-30FF1F953599"}, {IDType: "class", ID: "1B2C3D4E-0000-4000-8000-000000000001"}}
		return in
	})
	add(dev, false, "vpci-instance", win, "a PCI device by instance path", T("T10"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Windows.Devices = []specs.WindowsDevice{{IDType: "vpci-instance-id", ID: `PCIP\VEN_10DE&DEV_1EB8\4&1234`}}
		return in
	})
	add(dev, true, "linux-defaults", lin, "containerd's default device cgroup rules", nil, linuxCreate)
	add(dev, true, "linux-allowed-node", lin, "/dev/fuse, allowed, with its cgroup rule", nil, func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Spec.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}
		in.Spec.Linux.Resources.Devices = append(in.Spec.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(229), Access: "rwm"})
		return in
	})
	add(dev, false, "linux-kvm", lin, "/dev/kvm and its cgroup rule", T("T10"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Spec.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/kvm", Type: "c", Major: 10, Minor: 232}}
		in.Spec.Linux.Resources.Devices = append(in.Spec.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(232), Access: "rwm"})
		return in
	})
	add(dev, false, "linux-privileged-cgroup", lin, "the privileged wildcard rule a *:* rwm", T("T10"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Spec.Linux.Resources.Devices = append(in.Spec.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})
		return in
	})
}
