package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

/*
An untrusted workload's root file system comes from containerd's snapshotter, never from a
host directory of the client's choosing, and no task is restored from a host checkpoint.

  - spec.root.path. Linux: containerd's CRI plugin writes "rootfs" (relative: the bundle's
    rootfs directory, where the shim mounts CreateTaskRequest.Rootfs;
    internal/cri/server/container_create.go WithRelativeRoot); runc and runsc take an
    absolute path as is, and runsc's gofer then serves that host directory as the
    container's root (runsc/specutils/specutils.go fixSpec). So a relative path must stay
    inside the bundle (no ".."), an absolute one must lie below
    untrusted.rootfs.allowedSources. Windows: CRI clears the root (WithoutRoot), and
    runhcs takes a set path as storage that is already mounted - any host volume
    \\?\Volume{GUID}\ for process isolation (internal/hcsoci/resources_wcow.go,
    hcsdoc_wcow.go) - so it must be empty.
  - spec.windows.layerFolders (runhcs: the parents, then the scratch; containerd never sets
    them, ctr of old did) and CreateTaskRequest.Rootfs: every host path they name must lie
    below untrusted.rootfs.allowedSources (default: containerd's root directory, where the
    snapshotters keep their snapshots). Linux: the snapshotters' mount types overlay
    (lowerdir, upperdir, workdir) and bind (source) - overlayfs and native,
    plugins/snapshots/*; Windows: windows-layer (source, parentLayerPaths=[...]), CimFS
    and BlockCIM (source, parentLayerPaths, parentCimPaths, cimpath, mergedCIMPath),
    internal/layers/wcow_parse.go. Other mount types are denied.
  - CreateTaskRequest.Checkpoint, ParentCheckpoint: the runc shim restores the task from
    these host directories (process/init.go createCheckpointedState); runhcs and gVisor's
    shim ignore them. Set, they are denied.

**Restricted Fields:**

spec.root.path, spec.windows.layerFolders[*], CreateTaskRequest.rootfs[*] (type, source,
path options), CreateTaskRequest.checkpoint, parent_checkpoint

**Allowed Values:** Linux root.path relative without "..", or below allowedSources; Windows
root.path empty; layer folders and snapshot mounts below untrusted.rootfs.allowedSources;
no checkpoint
*/

var ruleRootfs = &rule{
	id:      "untrusted.rootfs",
	threats: []string{"T18"},
	calls:   []Call{CallStart, CallCreate},
	action:  "denial",
	summary: "the root file system only from containerd's snapshots (root.path inside the bundle; layer folders and CreateTaskRequest.Rootfs below untrusted.rootfs.allowedSources), no restore from a host checkpoint",
	check:   checkRootfs,
}

func checkRootfs(ev *evaluation) {
	in := ev.in
	if s := in.Spec; s != nil {
		if s.Root != nil && s.Root.Path != "" {
			ev.checkRootPath(s.Root.Path)
		}
		if s.Windows != nil {
			for i, l := range s.Windows.LayerFolders {
				ev.rootfsPath(fmt.Sprintf("windows.layerFolders[%d]", i), l)
			}
		}
	}
	for i, m := range in.Rootfs {
		ev.checkRootfsMount(i, m.Type, m.Source, m.Options)
	}
	if in.Checkpoint != "" {
		ev.deny("checkpoint", "a restore from host checkpoint %s is not allowed", in.Checkpoint)
	}
	if in.ParentCheckpoint != "" {
		ev.deny("parent_checkpoint", "a restore from host checkpoint %s is not allowed", in.ParentCheckpoint)
	}
}

func (ev *evaluation) checkRootPath(p string) {
	if ev.platform == Windows {
		ev.deny("root.path", "root.path %s names storage on the host; containerd's CRI plugin leaves it empty", p)
		return
	}
	if !strings.HasPrefix(p, "/") {
		for e := range strings.SplitSeq(p, "/") {
			if e == ".." {
				ev.deny("root.path", "root.path %s leaves the bundle", p)
				return
			}
		}
		return
	}
	ev.rootfsPath("root.path", p)
}

// rootfsPath denies a host path that is not below untrusted.rootfs.allowedSources.
func (ev *evaluation) rootfsPath(field, p string) {
	hp, kind, err := parseHostPath(ev.platform, p)
	if err != nil || kind != kindPath {
		if err == nil {
			err = fmt.Errorf("is not a host directory")
		}
		ev.deny(field, "root file system %s: %v", p, err)
		return
	}
	for i := range ev.p.rootfsSources {
		if ev.p.rootfsSources[i].match(ev.platform, hp, placeholders{}) {
			return
		}
	}
	ev.deny(field, "root file system %s is not below untrusted.rootfs.allowedSources", p)
}

// Path-valued options of snapshot mounts. Windows options carry JSON arrays
// (core/mount/mount_windows.go ParentLayerPathsFlag; hcsshim internal/layers
// getOptionAsArray).
var (
	linuxRootfsPathOptions   = []string{"lowerdir", "upperdir", "workdir"}
	windowsRootfsPathOptions = []string{"cimpath", "mergedCIMPath"}
	windowsRootfsListOptions = []string{"parentLayerPaths", "parentCimPaths"}
)

func (ev *evaluation) checkRootfsMount(i int, typ, source string, options []string) {
	field := fmt.Sprintf("rootfs[%d]", i)
	if ev.platform == Linux {
		switch typ {
		case "overlay":
		case "bind":
			ev.rootfsPath(field+".source", source)
		default:
			ev.deny(field+".type", "root file system mount type %q is not a snapshot mount isoguard checks (overlay, bind)", typ)
			return
		}
		for _, o := range options {
			k, v, ok := strings.Cut(o, "=")
			if !ok || !slices.Contains(linuxRootfsPathOptions, k) {
				continue
			}
			for d := range strings.SplitSeq(v, ":") {
				if d != "" {
					ev.rootfsPath(field+".options."+k, d)
				}
			}
		}
		return
	}
	switch typ {
	case "windows-layer", "CimFS", "BlockCIM":
	default:
		ev.deny(field+".type", "root file system mount type %q is not a snapshot mount isoguard checks (windows-layer, CimFS, BlockCIM)", typ)
		return
	}
	if source != "" {
		ev.rootfsPath(field+".source", source)
	}
	for _, o := range options {
		k, v, ok := strings.Cut(o, "=")
		switch {
		case !ok:
		case slices.Contains(windowsRootfsPathOptions, k):
			ev.rootfsPath(field+".options."+k, v)
		case slices.Contains(windowsRootfsListOptions, k):
			var paths []string
			if err := json.Unmarshal([]byte(v), &paths); err != nil {
				ev.deny(field+".options."+k, "option %s is not a JSON list of paths: %v", k, err)
				continue
			}
			for _, p := range paths {
				ev.rootfsPath(field+".options."+k, p)
			}
		}
	}
}
