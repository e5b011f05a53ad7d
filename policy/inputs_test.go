package policy

import (
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/internal/cri"
)

// Inputs as containerd's CRI plugin produces them (internal/cri: DefaultCRIAnnotations,
// WithWindowsMounts, linuxContainerMounts), for the fixtures, the fuzz seeds and the
// benchmark.

const (
	podUID      = "3f1c2a4e-9b7d-4e1a-8c6f-2d5e7a9b0c1d"
	otherPodUID = "7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d"
	sandboxID   = "5c7e0f9a2b4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
	containerID = "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c"
	tenantNS    = "team-a"
	podName     = "web-0"
)

func anyOf(t testing.TB, typeURL string, m proto.Message) *anypb.Any {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: typeURL, Value: b}
}

// criProcessOptions is a CRI handler's runhcs options for process isolation: non-empty
// (containerd's default Windows runtime config sets fields), SandboxIsolation PROCESS.
func criProcessOptions(t testing.TB) *anypb.Any {
	return anyOf(t, TypeURLRunhcsOptions, &runhcsopts.Options{
		SandboxIsolation:        runhcsopts.Options_PROCESS,
		ScaleCpuLimitsToSandbox: true,
	})
}

func hyperVOptions(t testing.TB) *anypb.Any {
	return anyOf(t, TypeURLRunhcsOptions, &runhcsopts.Options{
		SandboxIsolation:        runhcsopts.Options_HYPERVISOR,
		ScaleCpuLimitsToSandbox: true,
	})
}

func runcOptions(t testing.TB, binary string) *anypb.Any {
	return anyOf(t, TypeURLRuncOptions, &runcopts.Options{BinaryName: binary, SystemdCgroup: true})
}

func winPodAnnotations(role Role, ns, pod, uid string) map[string]string {
	a := map[string]string{
		cri.SandboxID:                             sandboxID,
		cri.SandboxNamespace:                      ns,
		cri.SandboxName:                           pod,
		cri.SandboxUID:                            uid,
		"microsoft.com/hostprocess-container":     "false",
		"io.kubernetes.cri.sandbox-log-directory": `C:\var\log\pods\` + ns + "_" + pod + "_" + uid,
	}
	if role == cri.RoleSandbox {
		a[cri.ContainerType] = "sandbox"
		a["io.kubernetes.cri.podsandbox.image-name"] = "registry.k8s.io/pause:3.10"
	} else {
		a[cri.ContainerType] = "container"
		a[cri.ContainerName] = "app"
		a["io.kubernetes.cri.image-name"] = "mcr.microsoft.com/windows/servercore:ltsc2022"
	}
	return a
}

// winSandboxSpec is a CRI pod sandbox (pause) config.json.
func winSandboxSpec() *specs.Spec {
	return &specs.Spec{
		Version:  "1.2.0",
		Hostname: podName,
		Process: &specs.Process{
			Args: []string{`c:\windows\system32\pause.exe`},
			Env:  []string{`PATH=c:\Windows\System32;c:\Windows`},
			Cwd:  `C:\`,
			User: specs.User{Username: "ContainerUser"},
		},
		Annotations: winPodAnnotations(cri.RoleSandbox, tenantNS, podName, podUID),
		Windows: &specs.Windows{
			LayerFolders: []string{`C:\ProgramData\containerd\root\io.containerd.snapshotter.v1.windows\snapshots\12`},
			Network:      &specs.WindowsNetwork{NetworkNamespace: "a6c4f0d2-6f8e-4e55-9d3b-1b2c3d4e5f60"},
		},
	}
}

// winContainerSpec is a CRI workload container config.json (servercore image that
// declares ContainerUser; a service account token and the termination log mounted).
func winContainerSpec() *specs.Spec {
	count := uint64(2)
	limit := uint64(1 << 30)
	return &specs.Spec{
		Version:  "1.2.0",
		Hostname: podName,
		Process: &specs.Process{
			Args: []string{"cmd", "/c", "ping -t localhost"},
			Env:  []string{`PATH=c:\Windows\System32;c:\Windows`, "DB_PASSWORD=hunter2-secret-value"},
			Cwd:  `C:\`,
			User: specs.User{Username: "ContainerUser"},
		},
		Mounts: []specs.Mount{
			{
				Destination: `C:\var\run\secrets\kubernetes.io\serviceaccount`,
				Source:      `C:\var\lib\kubelet\pods\` + podUID + `\volumes\kubernetes.io~projected\kube-api-access-x7k2p`,
				Options:     []string{"ro"},
			},
			{
				Destination: `C:\dev\termination-log`,
				Source:      `C:\var\lib\kubelet\pods\` + podUID + `\containers\app\4b1c9e2f`,
				Options:     []string{"rw"},
			},
		},
		Annotations: winPodAnnotations(cri.RoleContainer, tenantNS, podName, podUID),
		Windows: &specs.Windows{
			LayerFolders: []string{`C:\ProgramData\containerd\root\io.containerd.snapshotter.v1.windows\snapshots\31`},
			Resources: &specs.WindowsResources{
				CPU:    &specs.WindowsCPUResources{Count: &count},
				Memory: &specs.WindowsMemoryResources{Limit: &limit},
			},
			Network: &specs.WindowsNetwork{NetworkNamespace: "a6c4f0d2-6f8e-4e55-9d3b-1b2c3d4e5f60"},
		},
	}
}

// podPins are the pins a Windows pod of tenant team-a got at start (enforced).
func podPins(platform Platform) *Pins {
	iso := IsolationHyperV
	if platform == Linux {
		iso = "/usr/local/bin/containerd-shim-runsc-v1"
	}
	return &Pins{
		Tenant:        tenantNS,
		Isolation:     iso,
		Namespace:     cri.DefaultNamespace,
		SandboxID:     sandboxID,
		KubeNamespace: tenantNS,
		KubePod:       podName,
		KubePodUID:    podUID,
	}
}

// winCreate is the Create of a workload container of an untrusted pod with CRI's process
// options: the typical call.
func winCreate(t testing.TB) Input {
	return Input{
		Call:      CallCreate,
		Platform:  Windows,
		Namespace: cri.DefaultNamespace,
		ID:        containerID,
		Role:      cri.RoleContainer,
		SandboxID: sandboxID,
		Spec:      winContainerSpec(),
		Options:   criProcessOptions(t),
		Pod:       podPins(Windows),
	}
}

// winStart is the start of an untrusted pod's sandbox.
func winStart(t testing.TB) Input {
	return Input{
		Call:      CallStart,
		Platform:  Windows,
		Namespace: cri.DefaultNamespace,
		ID:        sandboxID,
		Role:      cri.RoleSandbox,
		SandboxID: sandboxID,
		Spec:      winSandboxSpec(),
		Options:   criProcessOptions(t),
	}
}

// winSandboxCreate is the Create of the pod's sandbox container.
func winSandboxCreate(t testing.TB) Input {
	in := winStart(t)
	in.Call = CallCreate
	in.Pod = podPins(Windows)
	return in
}

func winExec(user string) Input {
	return Input{
		Call:      CallExec,
		Platform:  Windows,
		Namespace: cri.DefaultNamespace,
		ID:        containerID,
		ExecID:    "exec-1",
		Process: &specs.Process{
			Args: []string{"cmd", "/c", "whoami"},
			Env:  []string{"DB_PASSWORD=hunter2-secret-value"},
			Cwd:  `C:\`,
			User: specs.User{Username: user},
		},
		Pod: podPins(Windows),
	}
}

func linuxAnnotations(role Role) map[string]string {
	a := map[string]string{
		cri.SandboxID:        sandboxID,
		cri.SandboxNamespace: tenantNS,
		cri.SandboxName:      podName,
		cri.SandboxUID:       podUID,
	}
	if role == cri.RoleSandbox {
		a[cri.ContainerType] = "sandbox"
	} else {
		a[cri.ContainerType] = "container"
		a[cri.ContainerName] = "app"
	}
	return a
}

func i64(v int64) *int64 { return &v }

// linuxContainerSpec is a CRI workload container config.json on Linux (abridged to what
// the rules read: process, mounts, devices, annotations).
func linuxContainerSpec() *specs.Spec {
	criDir := "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sandboxID
	return &specs.Spec{
		Version:  "1.2.0",
		Hostname: podName,
		Root:     &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args: []string{"/app"},
			Env:  []string{"PATH=/usr/bin:/bin", "DB_PASSWORD=hunter2-secret-value"},
			Cwd:  "/",
			User: specs.User{UID: 1000, GID: 1000},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
			{Destination: "/etc/hosts", Type: "bind", Source: criDir + "/hosts", Options: []string{"rbind", "rprivate", "rw"}},
			{Destination: "/etc/hostname", Type: "bind", Source: criDir + "/hostname", Options: []string{"rbind", "rprivate", "rw"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: criDir + "/resolv.conf", Options: []string{"rbind", "rprivate", "rw"}},
			{Destination: "/dev/shm", Type: "bind", Source: "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sandboxID + "/shm", Options: []string{"rbind", "rprivate", "rw"}},
			{Destination: "/var/run/secrets/kubernetes.io/serviceaccount", Type: "bind", Source: "/var/lib/kubelet/pods/" + podUID + "/volumes/kubernetes.io~projected/kube-api-access-x7k2p", Options: []string{"rbind", "rprivate", "ro"}},
			{Destination: "/dev/termination-log", Type: "bind", Source: "/var/lib/kubelet/pods/" + podUID + "/containers/app/4b1c9e2f", Options: []string{"rbind", "rprivate", "rw"}},
		},
		Annotations: linuxAnnotations(cri.RoleContainer),
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{
					{Allow: false, Access: "rwm"},
					{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
					{Allow: true, Type: "c", Major: i64(1), Minor: i64(8), Access: "rwm"},
					{Allow: true, Type: "c", Major: i64(1), Minor: i64(7), Access: "rwm"},
					{Allow: true, Type: "c", Major: i64(5), Minor: i64(0), Access: "rwm"},
					{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rwm"},
					{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "rwm"},
					{Allow: true, Type: "c", Major: i64(5), Minor: i64(1), Access: "rwm"},
					{Allow: true, Type: "c", Major: i64(136), Access: "rwm"},
					{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"},
				},
			},
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace, Path: "/proc/4242/ns/ipc"}},
		},
	}
}

func linuxCreate(t testing.TB) Input {
	return Input{
		Call:      CallCreate,
		Platform:  Linux,
		Namespace: cri.DefaultNamespace,
		ID:        containerID,
		Role:      cri.RoleContainer,
		SandboxID: sandboxID,
		Spec:      linuxContainerSpec(),
		Options:   runcOptions(t, ""),
		Pod:       podPins(Linux),
	}
}

func linuxExec(uid uint32) Input {
	return Input{
		Call:      CallExec,
		Platform:  Linux,
		Namespace: cri.DefaultNamespace,
		ID:        containerID,
		ExecID:    "exec-1",
		Process: &specs.Process{
			Args: []string{"/bin/sh"},
			Env:  []string{"DB_PASSWORD=hunter2-secret-value"},
			Cwd:  "/",
			User: specs.User{UID: uid, GID: uid},
		},
		Pod: podPins(Linux),
	}
}
