package policy

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Golden fixture cases of rule untrusted.hostpath (testdata/untrusted.hostpath/).
func hostPathCases(add fixtureAdder) {
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
}
