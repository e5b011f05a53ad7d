package policy

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/isoguard/isoguard/shim/hooks"
)

const (
	overlayRoot  = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/"
	windowsSnaps = `C:\ProgramData\containerd\root\io.containerd.snapshotter.v1.windows\snapshots\`
)

// criRootfs is the snapshot mount containerd passes a CRI container's Create: overlayfs
// (plugins/snapshots/overlay/overlay.go mounts) or the windows snapshotter's windows-layer
// (plugins/snapshots/windows/windows.go mounts).
func criRootfs(p Platform) []hooks.Mount {
	if p == Windows {
		return []hooks.Mount{{Type: "windows-layer", Source: windowsSnaps + "14", Options: []string{"rw",
			`parentLayerPaths=["` + jsonEscape(windowsSnaps+"13") + `","` + jsonEscape(windowsSnaps+"12") + `"]`}}}
	}
	return []hooks.Mount{{Type: "overlay", Source: "overlay", Options: []string{"index=off",
		"workdir=" + overlayRoot + "31/work", "upperdir=" + overlayRoot + "31/fs",
		"lowerdir=" + overlayRoot + "30/fs:" + overlayRoot + "29/fs"}}}
}

func jsonEscape(s string) string {
	out := ""
	for _, c := range s {
		if c == '\\' {
			out += `\\`
			continue
		}
		out += string(c)
	}
	return out
}

func withRootfs(in Input, m ...hooks.Mount) Input {
	in.Rootfs = m
	return in
}

func withRootPath(in Input, path string) Input {
	in.Spec.Root = &specs.Root{Path: path}
	return in
}

// Golden fixture cases of rule untrusted.rootfs (testdata/untrusted.rootfs/).
func rootfsCases(add fixtureAdder) {
	const r = "untrusted.rootfs"
	add(r, true, "linux-cri-overlay", lin, "CRI's overlay snapshot and root.path rootfs", nil, func(t testing.TB) Input {
		return withRootfs(linuxCreate(t), criRootfs(Linux)...)
	})
	add(r, true, "linux-native-bind", lin, "the native snapshotter's bind mount", nil, func(t testing.TB) Input {
		return withRootfs(linuxCreate(t), hooks.Mount{Type: "bind", Source: "/var/lib/containerd/io.containerd.snapshotter.v1.native/snapshots/7", Options: []string{"rbind", "rw"}})
	})
	add(r, true, "windows-cri-layer", win, "the windows snapshotter's windows-layer, no root.path", nil, func(t testing.TB) Input {
		return withRootfs(winCreate(t), criRootfs(Windows)...)
	})
	add(r, false, "linux-root-host", lin, "root.path / (ctr run --rootfs /: the host's root as the container's): denied", T("T18"), func(t testing.TB) Input {
		return withRootPath(linuxCreate(t), "/")
	})
	add(r, false, "linux-root-dotdot", lin, `root.path leaving the bundle with "..": denied`, T("T18"), func(t testing.TB) Input {
		return withRootPath(linuxCreate(t), "rootfs/../../../../etc")
	})
	add(r, false, "linux-bind-home", lin, "a bind snapshot of a host directory: denied", T("T18"), func(t testing.TB) Input {
		return withRootfs(linuxCreate(t), hooks.Mount{Type: "bind", Source: "/home", Options: []string{"rbind", "rw"}})
	})
	add(r, false, "linux-overlay-host-lower", lin, "an overlay whose lower directory is the host's root: denied", T("T18"), func(t testing.TB) Input {
		return withRootfs(linuxCreate(t), hooks.Mount{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/", "upperdir=" + overlayRoot + "31/fs", "workdir=" + overlayRoot + "31/work"}})
	})
	add(r, false, "linux-block-device", lin, "a file system mount of a block device: denied", T("T18"), func(t testing.TB) Input {
		return withRootfs(linuxCreate(t), hooks.Mount{Type: "ext4", Source: "/dev/sda1"})
	})
	add(r, false, "linux-checkpoint", lin, "a restore from a host checkpoint: denied", T("T18"), func(t testing.TB) Input {
		in := withRootfs(linuxCreate(t), criRootfs(Linux)...)
		in.Checkpoint = "/var/lib/other-tenant/checkpoint"
		in.ParentCheckpoint = "/var/lib/other-tenant/parent"
		return in
	})
	add(r, false, "windows-root-volume", win, `root.path \\?\Volume{...}\ (runhcs would use the host volume): denied`, T("T18"), func(t testing.TB) Input {
		return withRootPath(withRootfs(winCreate(t), criRootfs(Windows)...), `\\?\Volume{4a2b4f0e-7c0f-11ee-b962-0242ac120002}\`)
	})
	add(r, false, "windows-layer-folders", win, "layer folders of the host's Windows directory: denied", T("T18"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Windows.LayerFolders = []string{`C:\Windows`, `C:\Users\Public\scratch`}
		return in
	})
	add(r, false, "windows-parent-outside", win, "a parent layer outside containerd's root: denied", T("T18"), func(t testing.TB) Input {
		return withRootfs(winCreate(t), hooks.Mount{Type: "windows-layer", Source: windowsSnaps + "14", Options: []string{"rw", `parentLayerPaths=["C:\\Users\\Administrator"]`}})
	})
	add(r, false, "windows-parent-not-json", win, "parentLayerPaths that is not JSON: denied", T("T18"), func(t testing.TB) Input {
		return withRootfs(winCreate(t), hooks.Mount{Type: "windows-layer", Source: windowsSnaps + "14", Options: []string{`parentLayerPaths=C:\x`}})
	})
	add(r, false, "windows-lcow-layer", win, "an LCOW layer: denied", T("T18"), func(t testing.TB) Input {
		return withRootfs(winCreate(t), hooks.Mount{Type: "lcow-layer", Source: windowsSnaps + "14"})
	})
}
