package policy

import (
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Golden fixture cases of rule untrusted.annotations (testdata/untrusted.annotations/).
func annotationsCases(add fixtureAdder) {
	const ann = "untrusted.annotations"
	add(ann, true, "already-safe", win, "disable-unsafe-operations already true, only CRI annotations and an allowed storage QoS key", nil, func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "io.microsoft.disable-unsafe-operations", "true", "io.microsoft.container.storage.qos.iopsmaximum", "500")
	})
	add(ann, false, "force-unsafe-operations", win, "CRI's annotations only: io.microsoft.disable-unsafe-operations=true is added", T("T11"), winCreate)
	add(ann, false, "unsafe-operations-false", win, "disable-unsafe-operations=false: forced to true", T("T11"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "io.microsoft.disable-unsafe-operations", "false")
	})
	add(ann, false, "expansion-conflict", win, "an expansion of disable-unsafe-operations set to false (hcsshim would refuse the conflict): forced to true", T("T11"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "microsoft.com/disable-hostprocess-container", "false", "io.microsoft.virtualmachine.fileshares.disablewritable", "0")
	})
	for _, c := range []struct{ name, key string }{
		{"kernel-drivers", "io.microsoft.virtualmachine.kerneldrivers"},
		{"dump-directory", "io.microsoft.virtualmachine.dump-directory-path"},
		{"boot-files", "io.microsoft.virtualmachine.bootfilesrootpath"},
		{"console-pipe", "io.microsoft.virtualmachine.console.pipe"},
		{"hv-socket-service-table", "io.microsoft.virtualmachine.hv-socket.service-table.0e2d7b6a-3d54-4a34-8d77-1b5a9c0e1f22"},
		{"additional-registry-keys", "io.microsoft.virtualmachine.wcow.additional-reg-keys"},
		{"device-extensions", "io.microsoft.container.wcow.deviceextensions"},
		{"ncproxy", "io.microsoft.network.ncproxy"},
		{"hostprocess-rootfs", "microsoft.com/hostprocess-rootfs-location"},
		{"odd-case-key", "IO.Microsoft.VirtualMachine.KernelDrivers"},
	} {
		add(ann, false, c.name, win, c.key+": stripped (its value is not recorded)", T("T11"), func(t testing.TB) Input {
			return withAnnotations(winCreate(t), c.key, secretAnnotationValue)
		})
	}
	add(ann, false, "deny-mode", "windows-deny", "onDisallowed: deny: a disallowed key denies the Create", T("T11"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "io.microsoft.virtualmachine.dump-directory-path", `C:\dumps`)
	})
	add(ann, false, "clamp-uvm", win, "UVM processor count and memory above the limits: clamped", T("T11"), func(t testing.TB) Input {
		in := winSandboxCreate(t)
		in.Spec.Annotations["io.microsoft.virtualmachine.computetopology.processor.count"] = "64"
		in.Spec.Annotations["io.microsoft.virtualmachine.computetopology.memory.sizeinmb"] = "65536"
		return in
	})
	add(ann, false, "uvm-not-a-number", win, "a UVM size that is not a positive integer: stripped", T("T11"), func(t testing.TB) Input {
		return withAnnotations(winSandboxCreate(t), "io.microsoft.virtualmachine.computetopology.processor.count", "-1")
	})
	add(ann, false, "options-derived", win, "runtime options that runhcs turns into annotations: default annotations, boot files path, ncproxy, UVM sizes", T("T11"), func(t testing.TB) Input {
		in := winSandboxCreate(t)
		in.Options = anyOf(t, TypeURLRunhcsOptions, &runhcsopts.Options{
			SandboxIsolation:  runhcsopts.Options_HYPERVISOR,
			BootFilesRootPath: `C:\attacker\boot`,
			NCProxyAddr:       `\\.\pipe\ncproxy`,
			VmProcessorCount:  64,
			VmMemorySizeInMb:  -5,
			DefaultContainerAnnotations: map[string]string{
				"io.microsoft.virtualmachine.kerneldrivers":               secretAnnotationValue,
				"io.microsoft.container.storage.qos.iopsmaximum":          "100",
				"io.microsoft.virtualmachine.wcow.virtualSMB.nodirectmap": "false",
				"example.com/unrelated":                                   "kept",
			},
		})
		in.Spec.Windows.HyperV = &specs.WindowsHyperV{}
		return in
	})
	add(ann, false, "update-annotations", win, "an Update carrying a CPU group annotation: denied (an update cannot be rewritten)", T("T11", "T14"), func(t testing.TB) Input {
		in := winUpdate(t, &specs.WindowsResources{})
		in.UpdateAnnotations = map[string]string{"io.microsoft.virtualmachine.cpugroup.id": "0e2d7b6a-3d54-4a34-8d77-1b5a9c0e1f22"}
		return in
	})
	add(ann, false, "allow-writable-shares", "windows-writable", "allowWritableFileShares: the three other protections are forced one by one, disable-unsafe-operations=false removed", T("T11"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "io.microsoft.disable-unsafe-operations", "false")
	})
	add(ann, true, "linux-no-runtime-annotations", lin, "no dev.gvisor.* annotations", nil, linuxCreate)
	add(ann, false, "linux-gvisor-flag-override", lin, "a runsc flag override annotation: stripped", T("T11"), func(t testing.TB) Input {
		return withAnnotations(linuxCreate(t), "dev.gvisor.flag.network", "host")
	})
}
