package policy

import (
	"encoding/json"
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/internal/cri"
)

// fixtureCase is one golden fixture: dir is the rule ID (or input.invalid, or decision
// for behaviour that is not one rule's), pass says which side of the rule it is on.
type fixtureCase struct {
	dir     string
	pass    bool
	name    string
	desc    string
	threats []string
	policy  string
	input   func(t testing.TB) Input
}

// secretAnnotationValue stands for a secret in an annotation value; no decision may
// repeat it.
const secretAnnotationValue = "s3cr3t-annotation-value"

func withMounts(in Input, m ...specs.Mount) Input {
	in.Spec.Mounts = append(in.Spec.Mounts, m...)
	return in
}

func withAnnotations(in Input, kv ...string) Input {
	for i := 0; i+1 < len(kv); i += 2 {
		in.Spec.Annotations[kv[i]] = kv[i+1]
	}
	return in
}

func withUser(in Input, user string) Input {
	in.Spec.Process.User.Username = user
	return in
}

func resources(t testing.TB, typeURL string, v any) *anypb.Any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: typeURL, Value: b}
}

func winUpdate(t testing.TB, r *specs.WindowsResources) Input {
	return Input{
		Call:      CallUpdate,
		Platform:  Windows,
		Namespace: DefaultCRINamespace,
		ID:        containerID,
		Resources: resources(t, TypeURLWindowsResources, r),
		Pod:       podPins(Windows),
	}
}

func linuxUpdate(t testing.TB, r *specs.LinuxResources) Input {
	return Input{
		Call:      CallUpdate,
		Platform:  Linux,
		Namespace: DefaultCRINamespace,
		ID:        containerID,
		Resources: resources(t, TypeURLLinuxResources, r),
		Pod:       podPins(Linux),
	}
}

func u64(v uint64) *uint64 { return &v }
func u16(v uint16) *uint16 { return &v }

func hostMount(src string) specs.Mount {
	return specs.Mount{Destination: `C:\data`, Source: src, Options: []string{"rw"}}
}

func linuxBind(src string) specs.Mount {
	return specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"rbind", "rw"}}
}

// standalone turns a Windows create into one from a direct containerd client (ctr): no
// CRI annotations, its own namespace, pinned as a standalone container.
func standalone(in Input, ns string) Input {
	in.Namespace = ns
	in.Role = cri.RoleStandalone
	in.SandboxID = ""
	in.ID = "ctr-run-1"
	for k := range in.Spec.Annotations {
		if len(k) > len("io.kubernetes.cri.") && k[:len("io.kubernetes.cri.")] == "io.kubernetes.cri." {
			delete(in.Spec.Annotations, k)
		}
	}
	in.Pod = &Pins{Tenant: "containerd:" + ns, Isolation: IsolationHyperV, Namespace: ns, SandboxID: "ctr-run-1"}
	return in
}

func fixtureCases() []fixtureCase {
	var cs []fixtureCase
	add := func(dir string, pass bool, name, policy, desc string, threats []string, in func(t testing.TB) Input) {
		cs = append(cs, fixtureCase{dir: dir, pass: pass, name: name, desc: desc, threats: threats, policy: policy, input: in})
	}
	T := func(ts ...string) []string { return ts }
	const win, lin = "windows", "linux"

	// untrusted.isolation
	const iso = "untrusted.isolation"
	add(iso, true, "hyperv-already", win, "options already HYPERVISOR and config.json already Hyper-V: nothing to change", nil, func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = hyperVOptions(t)
		in.Spec.Windows.HyperV = &specs.WindowsHyperV{}
		return in
	})
	add(iso, false, "process-options", win, "CRI's process-isolation options on a workload container: rewritten to HYPERVISOR, spec.windows.hyperv set", T("T3"), winCreate)
	add(iso, false, "sandbox-start-process", win, "the pod's sandbox start with process options: the delegate's stdin options are rewritten before the pod exists", T("T3"), winStart)
	add(iso, false, "sandbox-create-process", win, "the sandbox container's Create with process options", T("T3"), winSandboxCreate)
	add(iso, false, "no-options", win, "no runtime options at all: Options{HYPERVISOR} is created", T("T3"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = nil
		return in
	})
	add(iso, false, "direct-client", win, "ctr run in containerd namespace default: no CRI annotations, untrusted, Hyper-V enforced just the same", T("T2", "T3"), func(t testing.TB) Input {
		in := standalone(winCreate(t), "default")
		in.Options = nil
		in.Spec.Mounts = nil
		return in
	})
	add(iso, false, "unknown-option-fields", win, "options carrying a field hcsshim v0.15 does not define: dropped", T("T3"), func(t testing.TB) Input {
		in := winCreate(t)
		b := in.Options.Value
		b = protowire.AppendTag(b, 99, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
		in.Options = &anypb.Any{TypeUrl: TypeURLRunhcsOptions, Value: b}
		return in
	})
	add(iso, false, "lcow", win, "a Linux spec (LCOW) on a Windows node: denied", T("T3"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Linux = &specs.Linux{}
		return in
	})
	add(iso, false, "sandbox-platform-linux", win, "options asking for a Linux sandbox platform: denied", T("T3"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = anyOf(t, TypeURLRunhcsOptions, &runhcsopts.Options{SandboxPlatform: "linux/amd64"})
		return in
	})
	add(iso, false, "utility-vm-path", win, "spec.windows.hyperv.utilityVMPath names a host path: denied", T("T3"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Windows.HyperV = &specs.WindowsHyperV{UtilityVMPath: `C:\attacker\uvm`}
		return in
	})
	add(iso, true, "linux-runsc-already", lin, "runc options already naming the sandbox runtime", nil, func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Options = runcOptions(t, "/usr/local/bin/runsc-isoguard")
		return in
	})
	add(iso, false, "linux-runc", lin, "CRI's runc options (BinaryName empty = runc): rewritten to the sandbox runtime", T("T3"), linuxCreate)
	add(iso, false, "linux-other-binary", lin, "options naming another runtime binary: rewritten", T("T3"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Options = runcOptions(t, "/usr/bin/crun")
		return in
	})
	add(iso, false, "linux-no-options", lin, "no options: runc Options{BinaryName: sandbox runtime} created", T("T3"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Options = nil
		return in
	})
	add(iso, false, "linux-no-sandbox-runtime", "linux-no-runtime", "no sandboxRuntime configured: untrusted workloads cannot be isolated, denied", T("T3"), linuxCreate)

	// untrusted.pod-consistency
	const pc = "untrusted.pod-consistency"
	add(pc, true, "same-pod", win, "a workload container of the pinned pod", nil, winCreate)
	add(pc, true, "join", win, "a workload container's start joins its own pod", nil, func(t testing.TB) Input {
		in := winCreate(t)
		in.Call = CallJoin
		in.Options = nil
		return in
	})
	add(pc, false, "no-pins", win, "a Create with no pins: the wrapper did not start this pod (spoofed sandbox id)", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Pod = nil
		return in
	})
	add(pc, false, "other-tenant", win, "a container of tenant team-b reaching team-a's pod", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Annotations[cri.SandboxNamespace] = "team-b"
		return in
	})
	add(pc, false, "trusted-tenant-joins-untrusted-pod", win, "a kube-system (trusted) container reaching an untrusted pod: evaluated as untrusted, denied", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		return in
	})
	add(pc, false, "spoofed-sandbox-id", win, "a container naming another sandbox than the pod's", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Pod.SandboxID = "0000000000000000000000000000000000000000000000000000000000000000"
		return in
	})
	add(pc, false, "isolation-mismatch", win, "the pod was started process-isolated (audit), the container would be Hyper-V: the pod's isolation cannot change", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Pod.Isolation = IsolationProcess
		return in
	})
	add(pc, false, "pod-uid-mismatch", win, "the container's pod uid differs from the pinned one (it would get another pod's kubelet directory)", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Annotations[cri.SandboxUID] = otherPodUID
		return in
	})
	add(pc, false, "join-other-namespace", win, "a join from another containerd namespace", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Call = CallJoin
		in.Options = nil
		in.Pod.Namespace = "other"
		return in
	})
	add(pc, false, "exec-without-pins", win, "an Exec with no pins", T("T4"), func(t testing.TB) Input {
		in := winExec("ContainerUser")
		in.Pod = nil
		return in
	})
	add(pc, false, "no-longer-trusted", win, "a pod admitted as trusted whose tenant the policy no longer trusts", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Pod.Trusted = true
		return in
	})

	// untrusted.user
	const user = "untrusted.user"
	add(user, true, "container-user", win, "the spec already runs as ContainerUser", nil, winCreate)
	add(user, true, "container-user-dot-prefix", win, `.\ContainerUser, in another letter case`, nil, func(t testing.TB) Input { return withUser(winCreate(t), `.\containeruser`) })
	add(user, true, "allowed-user", win, "a user on untrusted.allowedUsers", nil, func(t testing.TB) Input { return withUser(winCreate(t), "AppUser") })
	for _, c := range []struct{ name, user, desc string }{
		{"container-administrator", "ContainerAdministrator", "explicit runAsUserName ContainerAdministrator"},
		{"no-user", "", "no user: the image's default (servercore: ContainerAdministrator) would apply"},
		{"lower-case-admin", "containeradministrator", "admin name in lower case"},
		{"nt-authority-system", `NT AUTHORITY\SYSTEM`, "SYSTEM"},
		{"local-service", `NT AUTHORITY\LOCAL SERVICE`, "LOCAL SERVICE"},
		{"network-service", "NETWORK SERVICE", "NETWORK SERVICE"},
		{"builtin-administrators", `BUILTIN\Administrators`, "the Administrators group"},
		{"machine-prefix-admin", `WEB-0\ContainerAdministrator`, "admin qualified by the machine name"},
		{"dot-prefix-admin", `.\Administrator`, `admin with the local ".\" prefix`},
		{"upn-admin", "Administrator@web-0", "admin in UPN form"},
		{"system-sid", "S-1-5-18", "the SYSTEM SID"},
		{"image-local-user", "svc-app", "a user the image created (it may be in Administrators): not allowed, rewritten"},
		{"lookalike-unicode", "ContainerUſer", "a non-ASCII look-alike of ContainerUser (Unicode case folding would equate it)"},
	} {
		add(user, false, c.name, win, c.desc+": rewritten to ContainerUser", T("T5"), func(t testing.TB) Input { return withUser(winCreate(t), c.user) })
	}
	add(user, false, "sandbox-start-admin", win, "the sandbox (pause) at start with ContainerAdministrator", T("T5"), func(t testing.TB) Input {
		in := winStart(t)
		in.Spec.Process.User.Username = "ContainerAdministrator"
		return in
	})
	add(user, true, "linux-non-root", lin, "uid/gid 1000", nil, linuxCreate)
	add(user, false, "linux-root", lin, "uid 0 / gid 0 / additional gid 0: rewritten to 65534", T("T5"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Spec.Process.User = specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}}
		return in
	})

	// untrusted.exec-user
	const eu = "untrusted.exec-user"
	add(eu, true, "exec-container-user", win, "kubectl exec as ContainerUser", nil, func(t testing.TB) Input { return winExec("ContainerUser") })
	add(eu, false, "exec-admin", win, "kubectl exec inherits the stored spec's ContainerAdministrator: rewritten", T("T6"), func(t testing.TB) Input { return winExec("ContainerAdministrator") })
	add(eu, false, "exec-system", win, "ctr task exec --user 'NT AUTHORITY\\SYSTEM': rewritten", T("T6"), func(t testing.TB) Input { return winExec(`NT AUTHORITY\SYSTEM`) })
	add(eu, false, "exec-no-user", win, "exec with no user: rewritten", T("T6"), func(t testing.TB) Input { return winExec("") })
	add(eu, true, "linux-exec-non-root", lin, "exec as uid 1000", nil, func(t testing.TB) Input { return linuxExec(1000) })
	add(eu, false, "linux-exec-root", lin, "exec as root: rewritten", T("T6"), func(t testing.TB) Input { return linuxExec(0) })

	// untrusted.hostprocess
	const hp = "untrusted.hostprocess"
	add(hp, true, "hostprocess-false", win, `CRI's microsoft.com/hostprocess-container="false"`, nil, winCreate)
	add(hp, false, "hostprocess-true", win, "a HostProcess container", T("T7"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "microsoft.com/hostprocess-container", "true")
	})
	add(hp, false, "hostprocess-sandbox-start", win, "a HostProcess pod's sandbox start", T("T7"), func(t testing.TB) Input {
		in := winStart(t)
		in.Spec.Annotations["microsoft.com/hostprocess-container"] = "true"
		return in
	})
	add(hp, false, "hostprocess-1", win, `"1" (strconv.ParseBool true)`, T("T7"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "microsoft.com/hostprocess-container", "1")
	})
	add(hp, false, "hostprocess-garbage", win, "a value that is not a boolean: denied (not guessed)", T("T7"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "microsoft.com/hostprocess-container", "yes please")
	})
	add(hp, false, "inherit-user", win, "microsoft.com/hostprocess-inherit-user=true (SYSTEM)", T("T7"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "microsoft.com/hostprocess-inherit-user", "true")
	})
	add(hp, false, "options-default-annotation", win, "HostProcess through the runtime options' DefaultContainerAnnotations", T("T7"), func(t testing.TB) Input {
		in := winCreate(t)
		delete(in.Spec.Annotations, "microsoft.com/hostprocess-container")
		in.Options = anyOf(t, TypeURLRunhcsOptions, &runhcsopts.Options{DefaultContainerAnnotations: map[string]string{"microsoft.com/hostprocess-container": "true"}})
		return in
	})

	// untrusted.hostpath
	const hpath = "untrusted.hostpath"
	podDir := `C:\var\lib\kubelet\pods\` + podUID
	add(hpath, true, "own-pod-dir", win, "the service account token and termination log below the pod's own kubelet directory", nil, winCreate)
	add(hpath, true, "own-pod-dir-spelling", win, "the pod directory spelled with '/', lower case drive, upper case elements and a trailing separator", nil, func(t testing.TB) Input {
		return withMounts(winCreate(t), hostMount("c:/VAR/Lib/KUBELET/pods/"+podUID+"/volumes/kubernetes.io~empty-dir/cache/"))
	})
	add(hpath, true, "own-pod-dir-verbatim", win, `the pod directory with the \\?\ prefix`, nil, func(t testing.TB) Input {
		return withMounts(winCreate(t), hostMount(`\\?\`+podDir+`\volumes\kubernetes.io~empty-dir\cache`))
	})
	add(hpath, true, "own-pod-dir-dotdot-inside", win, `".." that stays inside the pod directory`, nil, func(t testing.TB) Input {
		return withMounts(winCreate(t), hostMount(podDir+`\volumes\x\..\kubernetes.io~empty-dir\cache`))
	})
	add(hpath, true, "image-volume", win, "an image VOLUME below the container's own CRI directory", nil, func(t testing.TB) Input {
		return withMounts(winCreate(t), hostMount(`C:\ProgramData\containerd\root\io.containerd.grpc.v1.cri\containers\`+containerID+`\volumes\4f2a`))
	})
	for _, c := range []struct{ name, src, desc string }{
		{"ssh-dir", `C:\Users\x\.ssh`, "the host's .ssh directory"},
		{"kubelet-dir", `C:\var\lib\kubelet`, "the kubelet's root (every pod, the kubelet's credentials)"},
		{"other-pod", `C:\var\lib\kubelet\pods\` + otherPodUID + `\volumes`, "another pod's kubelet directory"},
		{"dotdot-escape", podDir + `\..\` + otherPodUID + `\volumes`, `".." out of the pod directory into another pod's`},
		{"dotdot-verbatim", `\\?\` + podDir + `\..\..\..\..\..\Windows`, `".." below \\?\, which Windows does not resolve`},
		{"dotdot-above-root", `C:\..\..\Windows`, `".." above the drive root`},
		{"forward-slash-escape", "C:/var/lib/kubelet/pods/" + podUID + "/../../../../../Users/x/.ssh", "'/' separators and '..' out of the pod directory"},
		{"short-name-below", podDir + `\volumes\KUBERN~1\secret`, "an 8.3 short name below the pod directory (cannot be resolved purely)"},
		{"short-name-prefix", `C:\var\lib\KUBELE~1\pods\` + podUID, "an 8.3 short name of the kubelet directory"},
		{"unc-admin-share", `\\localhost\C$\var\lib\kubelet\pods\` + podUID, "the pod directory through the local admin share"},
		{"verbatim-unc", `\\?\UNC\fileserver\secrets\team-b`, `a UNC share through \\?\UNC\`},
		{"drive-relative", `C:var\lib\kubelet\pods\` + podUID, "a drive-relative path"},
		{"rooted-no-drive", `\var\lib\kubelet\pods\` + podUID, "a rooted path without a drive"},
		{"trailing-dot", podDir + `.\..\` + otherPodUID, "an element ending in '.', which Win32 strips"},
		{"alternate-data-stream", podDir + `:stream`, "an alternate data stream"},
		{"dos-device", podDir + `\volumes\CON`, "a reserved DOS device name"},
		{"volume-guid", `\\?\Volume{1b2c3d4e-0000-0000-0000-100000000000}\secrets`, "a volume GUID path"},
		{"sandbox-scheme", "sandbox:///mnt/x", "an hcsshim sandbox:// pseudo-source"},
		{"uvm-scheme", `uvm://C:\Windows`, "an hcsshim uvm:// pseudo-source"},
	} {
		add(hpath, false, c.name, win, c.desc+": denied", T("T8"), func(t testing.TB) Input { return withMounts(winCreate(t), hostMount(c.src)) })
	}
	add(hpath, false, "bind-type", win, `a mount of type "bind", which runhcs does not mount under Hyper-V`, T("T8"), func(t testing.TB) Input {
		m := hostMount(podDir + `\volumes`)
		m.Type = "bind"
		return withMounts(winCreate(t), m)
	})
	add(hpath, false, "direct-client-kubelet-dir", win, "ctr run (no pod uid) mounting a kubelet pod directory: no {podUID}, denied", T("T2", "T8"), func(t testing.TB) Input {
		return withMounts(standalone(winCreate(t), "default"), hostMount(podDir))
	})
	add(hpath, true, "linux-cri-mounts", lin, "containerd's CRI mounts: sandbox hosts/hostname/resolv.conf/shm, kubelet volumes, pseudo file systems", nil, linuxCreate)
	add(hpath, false, "linux-docker-sock", lin, "the container runtime's socket", T("T8"), func(t testing.TB) Input {
		return withMounts(linuxCreate(t), linuxBind("/run/containerd/containerd.sock"))
	})
	add(hpath, false, "linux-dotdot", lin, `".." out of the pod directory (Linux: refused, links make it ambiguous)`, T("T8"), func(t testing.TB) Input {
		return withMounts(linuxCreate(t), linuxBind("/var/lib/kubelet/pods/"+podUID+"/../"+otherPodUID))
	})
	add(hpath, false, "linux-host-ipc-shm", lin, "the host's /dev/shm (hostIPC pods)", T("T8"), func(t testing.TB) Input {
		return withMounts(linuxCreate(t), linuxBind("/dev/shm"))
	})
	add(hpath, false, "linux-bind-option", lin, `a bind mount expressed only by the "bind" option`, T("T8"), func(t testing.TB) Input {
		return withMounts(linuxCreate(t), specs.Mount{Destination: "/host", Source: "/", Options: []string{"bind"}})
	})

	// untrusted.named-pipe
	const np = "untrusted.named-pipe"
	add(np, true, "dir-named-pipe", win, `a directory called "pipe" below the pod directory is not a pipe`, nil, func(t testing.TB) Input {
		return withMounts(winCreate(t), hostMount(podDir+`\volumes\pipe`))
	})
	for _, c := range []struct{ name, src, desc string }{
		{"docker-engine", `\\.\pipe\docker_engine`, "the Docker engine's pipe"},
		{"containerd", `\\.\pipe\containerd-containerd`, "containerd's pipe"},
		{"wrapper-pipe", `\\.\pipe\ProtectedPrefix\Administrators\containerd-shim-k8s.io-` + sandboxID + `-pipe`, "the shim's own pipe"},
		{"forward-slashes", "//./pipe/docker_engine", "the pipe spelled with '/'"},
		{"upper-case", `\\.\PIPE\docker_engine`, "the pipe in upper case"},
		{"verbatim", `\\?\pipe\docker_engine`, `the pipe through \\?\`},
		{"nt-namespace", `\??\pipe\docker_engine`, `the pipe through \??\`},
		{"smb-pipe", `\\localhost\pipe\docker_engine`, "the pipe over SMB"},
		{"ipc-share", `\\127.0.0.1\IPC$\docker_engine`, "the IPC$ share"},
	} {
		add(np, false, c.name, win, c.desc+": denied", T("T9"), func(t testing.TB) Input {
			return withMounts(winCreate(t), specs.Mount{Destination: `\\.\pipe\docker_engine`, Source: c.src})
		})
	}

	// untrusted.disk-passthrough
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

	// untrusted.devices
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

	// untrusted.annotations
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

	// untrusted.update-limits
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

	// input.invalid (T13): denied for every tenant, in audit mode too.
	const bad = RuleInvalidInput
	add(bad, false, "create-without-spec", win, "a Create whose config.json could not be read", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec = nil
		return in
	})
	add(bad, false, "runtimeoptions-type", win, "CRI's runtimeoptions.v1.Options (runtime_type other than runhcs): runhcs would panic on it", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = &anypb.Any{TypeUrl: "runtimeoptions.v1.Options", Value: []byte{0x0a, 0x03, 'a', 'b', 'c'}}
		return in
	})
	add(bad, false, "runc-options-on-windows", win, "runc options on a Windows node", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = runcOptions(t, "runsc")
		return in
	})
	add(bad, false, "runhcs-options-on-linux", lin, "runhcs options on a Linux node", T("T13"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Options = hyperVOptions(t)
		return in
	})
	add(bad, false, "undecodable-options", win, "runhcs options whose bytes are not a message", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = &anypb.Any{TypeUrl: TypeURLRunhcsOptions, Value: []byte{0x0a, 0xff, 0xff}}
		return in
	})
	add(bad, false, "trusted-tenant-bad-options", win, "a trusted tenant's foreign options are denied too (runhcs would misread them)", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		in.Pod.Tenant, in.Pod.KubeNamespace, in.Pod.Trusted = "kube-system", "kube-system", true
		in.Options = &anypb.Any{TypeUrl: "runtimeoptions.v1.Options"}
		return in
	})
	add(bad, false, "exec-without-process", win, "an Exec without a process", T("T13"), func(t testing.TB) Input {
		in := winExec("")
		in.Process = nil
		return in
	})
	add(bad, false, "pins-at-start", win, "pins handed to a start", T("T13"), func(t testing.TB) Input {
		in := winStart(t)
		in.Pod = podPins(Windows)
		return in
	})
	add(bad, false, "role-mismatch", win, "the shim says sandbox, the spec's CRI annotations say container", T("T13", "T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Role = cri.RoleSandbox
		return in
	})
	add(bad, false, "half-cri-annotations", win, "container-type without sandbox-id", T("T13", "T4"), func(t testing.TB) Input {
		in := winCreate(t)
		delete(in.Spec.Annotations, cri.SandboxID)
		return in
	})
	add(bad, false, "platform-mismatch", win, "a Linux call evaluated by the Windows policy", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Platform = Linux
		return in
	})
	add(bad, false, "unknown-call", win, "a call the policy does not know", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Call = "checkpoint"
		return in
	})
	add(bad, false, "audit-mode-still-denies", "windows-audit", "malformed input denies in audit mode as well", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec = nil
		return in
	})

	// Behaviour of decisions as a whole.
	const dec = "decision"
	add(dec, true, "trusted-kubernetes-namespace", win, "a kube-system pod: trusted, allowed, nothing changed, still a decision", nil, func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		in.Spec.Process.User.Username = "ContainerAdministrator"
		in.Pod.Tenant, in.Pod.KubeNamespace, in.Pod.Trusted = "kube-system", "kube-system", true
		return in
	})
	add(dec, true, "trusted-containerd-namespace", win, "ctr in the trusted containerd namespace moby", nil, func(t testing.TB) Input {
		in := standalone(winCreate(t), "moby")
		in.Pod.Trusted = true
		in.Options = nil
		return in
	})
	add(dec, true, "start-pins", win, "an untrusted pod's sandbox start: pins with tenant, Hyper-V isolation and Kubernetes identity", nil, winStart)
	add(dec, true, "trusted-start-pins", win, "a trusted pod's start pins process isolation as requested", nil, func(t testing.TB) Input {
		in := winStart(t)
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		return in
	})
	add(dec, false, "spoofed-kubernetes-namespace", win, "ctr in namespace k8s.io as a standalone container claiming kube-system through the CRI annotation: its tenant is containerd:k8s.io, untrusted", T("T2"), func(t testing.TB) Input {
		in := standalone(winCreate(t), DefaultCRINamespace)
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		in.Spec.Process.User.Username = "ContainerAdministrator"
		return in
	})
	add(dec, false, "kube-annotations-outside-cri-namespace", win, "a pod-shaped container in another containerd namespace claiming kube-system: the containerd namespace is its tenant", T("T2"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Namespace = "buildkit"
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		in.Pod.Namespace, in.Pod.Tenant = "buildkit", "containerd:buildkit"
		in.Pod.KubeNamespace, in.Pod.KubePod, in.Pod.KubePodUID = "", "", ""
		return in
	})
	add(dec, false, "audit-mode", "windows-audit", "mode audit: allowed, every denial and mutation recorded, nothing applied", T("T8"), func(t testing.TB) Input {
		in := withUser(withMounts(winCreate(t), hostMount(`C:\Users\x\.ssh`)), "ContainerAdministrator")
		in.Pod.Isolation = IsolationProcess
		return in
	})
	add(dec, false, "audit-mode-start-pins", "windows-audit", "mode audit at start: the pins record the isolation the pod really gets (process)", T("T3"), winStart)
	add(dec, false, "tenant-audit-mode", win, "tenant team-legacy (trusted: false, mode: audit): findings recorded, nothing applied", T("T8"), func(t testing.TB) Input {
		in := withMounts(winCreate(t), hostMount(`C:\Users\x\.ssh`))
		in.Spec.Annotations[cri.SandboxNamespace] = "team-legacy"
		in.Pod.Tenant, in.Pod.KubeNamespace, in.Pod.Isolation = "team-legacy", "team-legacy", IsolationProcess
		return in
	})
	add(dec, false, "rule-audit-mode", "windows-rule-audit", "rules in audit mode: their findings and mutations are recorded, not applied; the other rules apply", T("T8", "T5"), func(t testing.TB) Input {
		return withUser(withMounts(winCreate(t), hostMount(`C:\Users\x\.ssh`)), "ContainerAdministrator")
	})
	add(dec, false, "several-denials", win, "several rules deny: the error lists every denial", T("T7", "T8", "T9"), func(t testing.TB) Input {
		in := withMounts(winCreate(t), hostMount(`C:\Users\x\.ssh`), specs.Mount{Destination: `\\.\pipe\d`, Source: `\\.\pipe\docker_engine`})
		in.Spec.Annotations["microsoft.com/hostprocess-container"] = "true"
		return in
	})
	add(dec, true, "linux-typical-pod", lin, "a typical Linux CRI container of an untrusted pod already in the sandbox runtime", nil, func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Options = anyOf(t, TypeURLRuncOptions, &runcopts.Options{BinaryName: "/usr/local/bin/runsc-isoguard"})
		return in
	})
	return cs
}
