package policy

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
)

// Golden fixture cases of rule untrusted.update-limits (testdata/untrusted.update-limits/).
func updateLimitsCases(add fixtureAdder) {
	const ul = "untrusted.update-limits"
	add(ul, true, "within-limits", win, "CRI UpdateContainerResources within the limits", nil, func(t testing.TB) Input {
		return winUpdate(t, &specs.WindowsResources{CPU: &specs.WindowsCPUResources{Count: u64(2), Maximum: u16(5000)}, Memory: &specs.WindowsMemoryResources{Limit: u64(2 << 30)}})
	})
	add(ul, false, "memory-over", win, "memory above limits.memoryMB", T("T14"), func(t testing.TB) Input {
		return winUpdate(t, &specs.WindowsResources{Memory: &specs.WindowsMemoryResources{Limit: u64(64 << 30)}})
	})
	add(ul, false, "memory-overflow", win, "a memory limit near 2^64 (must not wrap around)", T("T14"), func(t testing.TB) Input {
		return winUpdate(t, &specs.WindowsResources{Memory: &specs.WindowsMemoryResources{Limit: u64(^uint64(0))}})
	})
	add(ul, false, "cpu-over", win, "CPU count and shares above the limits", T("T14"), func(t testing.TB) Input {
		return winUpdate(t, &specs.WindowsResources{CPU: &specs.WindowsCPUResources{Count: u64(32), Shares: u16(10000)}})
	})
	add(ul, false, "sandbox-uvm-memory", win, "an Update of the pod's sandbox (resizes the VM) above uvmMemoryMB", T("T14"), func(t testing.TB) Input {
		in := winUpdate(t, &specs.WindowsResources{Memory: &specs.WindowsMemoryResources{Limit: u64(12 << 30)}})
		in.ID = sandboxID
		in.Pod = podPins(Windows)
		return in
	})
	add(ul, false, "container-mount", win, "an Update carrying hcsshim's ContainerMount (adds a host mount to a running container)", T("T14", "T8"), func(t testing.TB) Input {
		in := winUpdate(t, nil)
		in.Resources = resources(t, "github.com/Microsoft/hcsshim/pkg/ctrdtaskapi/ContainerMount", map[string]any{"HostPath": `C:\Users\x\.ssh`, "ContainerPath": `C:\ssh`})
		return in
	})
	add(ul, false, "linux-resources-on-windows", win, "LinuxResources on a Windows node", T("T14"), func(t testing.TB) Input {
		in := winUpdate(t, nil)
		in.Resources = resources(t, TypeURLLinuxResources, &specs.LinuxResources{})
		return in
	})
	add(ul, false, "undecodable", win, "resources that are not JSON", T("T14", "T13"), func(t testing.TB) Input {
		in := winUpdate(t, nil)
		in.Resources = &anypb.Any{TypeUrl: TypeURLWindowsResources, Value: []byte{0xff, 0x00, 0x01}}
		return in
	})
	add(ul, true, "linux-within-limits", lin, "Linux resources within the limits", nil, func(t testing.TB) Input {
		return linuxUpdate(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 30)}, CPU: &specs.LinuxCPU{Quota: i64(200000), Period: u64(100000)}})
	})
	add(ul, false, "linux-unlimited", lin, "memory -1, quota -1, pids -1 (unlimited)", T("T14"), func(t testing.TB) Input {
		return linuxUpdate(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}, CPU: &specs.LinuxCPU{Quota: i64(-1)}, Pids: &specs.LinuxPids{Limit: i64(-1)}})
	})
	add(ul, false, "linux-over", lin, "memory, CPUs, shares and pids above the limits", T("T14"), func(t testing.TB) Input {
		shares := uint64(100000)
		return linuxUpdate(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(8 << 30)}, CPU: &specs.LinuxCPU{Shares: &shares, Quota: i64(1600000), Period: u64(100000)}, Pids: &specs.LinuxPids{Limit: i64(100000)}})
	})
	add(ul, false, "linux-devices-unified", lin, "a device allow rule and raw cgroup v2 keys", T("T14", "T10"), func(t testing.TB) Input {
		return linuxUpdate(t, &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}, Unified: map[string]string{"memory.max": "max"}})
	})
}
