package policy

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Golden fixture cases of rule untrusted.spec-fields (testdata/untrusted.spec-fields/).
// TestDeniedFieldsDeny sets every denied field of the table in turn; these fixtures show
// the realistic ones.
func specFieldsCases(add fixtureAdder) {
	const r = "untrusted.spec-fields"
	add(r, true, "windows-gmsa-allowed", "windows-gmsa", "a gMSA credential spec where allowedFields names it", nil, func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Windows.CredentialSpec = `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"GMSA":"webapp01"}}`
		return in
	})
	add(r, false, "windows-gmsa", win, "a gMSA credential spec (a domain identity of the host's): denied", T("T19"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Windows.CredentialSpec = `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"GMSA":"webapp01"}}`
		return in
	})
	add(r, false, "windows-endpoints", win, "HNS endpoints of another pod: denied", T("T19"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Windows.Network = &specs.WindowsNetwork{EndpointList: []string{"8f5c1e2a-0e6d-4a4b-9b3e-6b0a5f0f8e11"}}
		return in
	})
	add(r, false, "windows-shared-network", win, "another container's network: denied", T("T19"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Windows.Network = &specs.WindowsNetwork{NetworkSharedContainerName: "other-tenant-app"}
		return in
	})
	add(r, false, "windows-exec-capabilities", win, "an exec with Linux capabilities on Windows: denied", T("T19"), func(t testing.TB) Input {
		in := winExec("ContainerUser")
		in.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_SYS_ADMIN"}}
		return in
	})
	add(r, false, "linux-net-devices", lin, "a host network interface moved into the container: denied", T("T19"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Spec.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth0": {Name: "eth0"}}
		return in
	})
	add(r, false, "linux-intel-rdt", lin, "a resctrl group of the host: denied", T("T19"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Spec.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "guaranteed"}
		return in
	})
	add(r, false, "linux-seccomp-listener", lin, "a seccomp notification listener on the host: denied", T("T19"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/seccomp-agent.sock"}
		return in
	})
	add(r, false, "linux-windows-section", lin, "a Windows section on Linux: denied", T("T19"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Spec.Windows = &specs.Windows{LayerFolders: []string{"/"}}
		return in
	})
	add(r, false, "linux-vm", lin, "a VM section naming a host kernel: denied", T("T19"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Spec.VM = &specs.VM{Kernel: specs.VMKernel{Path: "/boot/vmlinuz"}}
		return in
	})
}
