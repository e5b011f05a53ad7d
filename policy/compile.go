package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/isoguard/isoguard/internal/cri"
)

// DefaultAllowedHostPaths returns the default mounts.allowedHostPaths of platform (used
// when the field is absent): the pod's own kubelet directory (volumes, termination log)
// and the per-container directory of image volumes; on Linux also the pod's CRI sandbox
// directories (hosts, hostname, resolv.conf, /dev/shm), which containerd's CRI plugin
// bind-mounts into every container. The paths are the kubelet's and containerd's defaults
// (containerd's CRI plugin keeps its files under <root>/io.containerd.grpc.v1.cri and
// <state>/io.containerd.grpc.v1.cri, plugins/cri/runtime/plugin.go).
func DefaultAllowedHostPaths(p Platform) []string {
	if p == Linux {
		return []string{
			"/var/lib/kubelet/pods/{podUID}/",
			"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{sandboxID}/",
			"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/{sandboxID}/",
			"/var/lib/containerd/io.containerd.grpc.v1.cri/containers/{containerID}/volumes/",
		}
	}
	return []string{
		`C:\var\lib\kubelet\pods\{podUID}\`,
		`C:\ProgramData\containerd\root\io.containerd.grpc.v1.cri\containers\{containerID}\volumes\`,
	}
}

// DefaultStdioPaths returns the default stdio.allowedPaths of platform: where containerd's
// clients make their fifos (Linux: below containerd's state directory, pkg/cio/io_unix.go
// and CRI's <state>/io.containerd.grpc.v1.cri/containers/<id>/io) and pipes (Windows:
// \\.\pipe\ctr-<id>-stdin|stdout|stderr, pkg/cio/io_windows.go).
func DefaultStdioPaths(p Platform) []string {
	if p == Linux {
		return []string{"/run/containerd/"}
	}
	return []string{`\\.\pipe\ctr-`}
}

// DefaultRootfsSources returns the default rootfs.allowedSources of platform: containerd's
// default root directory, below which its snapshotters keep their snapshots
// (defaults/defaults_unix.go, defaults_windows.go).
func DefaultRootfsSources(p Platform) []string {
	if p == Linux {
		return []string{"/var/lib/containerd/"}
	}
	return []string{`C:\ProgramData\containerd\root\`}
}

// Policy is a compiled node policy for one platform. It is immutable and safe for
// concurrent use.
type Policy struct {
	platform     Platform
	mode         Mode
	criNamespace string
	tenants      map[tenantKey]tenantSetting
	ruleModes    map[string]Mode
	rules        []*rule // the registry's rules for this platform, in order

	user          string
	allowedUsers  []string
	linuxUID      uint32
	linuxGID      uint32
	sandbox       Sandbox
	hostPaths     []pathPrefix
	disks         []string
	devices       []string // Windows: "idtype://id" lower case; Linux: clean paths
	annAllowed    []string
	annDeny       bool
	allowWritable bool
	limits        Limits
	hostPrograms  []hostPath
	stdioDirs     []pathPrefix // Linux
	stdioPipes    []string     // Windows: pipe name prefixes
	rootfsSources []pathPrefix
	allowedFields map[string]bool
}

type tenantKind int

const (
	tenantContainerd tenantKind = iota
	tenantKubernetes
)

type tenantKey struct {
	kind tenantKind
	name string
}

type tenantSetting struct {
	trusted bool
	mode    Mode // "" = the file's mode
}

// Compile validates f for a node running nodeOS and returns the policy to evaluate. The
// file's platform, when set, must equal nodeOS. Errors wrap ErrInvalid and name the line
// (for a parsed file) and field.
func Compile(f *File, nodeOS Platform) (*Policy, error) {
	return compile(f, nodeOS, nil)
}

// compile is Compile with a rule list override (tests: proving that each rule's fail
// fixtures depend on that rule).
func compile(f *File, nodeOS Platform, rules []*rule) (*Policy, error) {
	if f == nil {
		return nil, fmt.Errorf("%w: no policy file", ErrInvalid)
	}
	switch nodeOS {
	case Windows, Linux:
	default:
		return nil, fmt.Errorf("%w: node OS %q is neither windows nor linux", ErrInvalid, nodeOS)
	}
	if f.Platform != "" && f.Platform != nodeOS {
		return nil, fmt.Errorf("%w: %s: the policy is for %s but this node runs %s", ErrInvalid, f.where("platform"), f.Platform, nodeOS)
	}
	if err := f.validate(nodeOS); err != nil {
		return nil, err
	}
	u := f.Untrusted
	p := &Policy{
		platform:      nodeOS,
		mode:          orDefault(f.Mode, Enforce),
		criNamespace:  orDefault(f.CRINamespace, cri.DefaultNamespace),
		tenants:       map[tenantKey]tenantSetting{},
		ruleModes:     map[string]Mode{},
		user:          orDefault(u.User, DefaultWindowsUser),
		allowedUsers:  append([]string(nil), u.AllowedUsers...),
		linuxUID:      DefaultLinuxUID,
		linuxGID:      DefaultLinuxGID,
		sandbox:       u.Sandbox,
		annAllowed:    append([]string(nil), u.Annotations.Allowed...),
		annDeny:       u.Annotations.OnDisallowed == "deny",
		allowWritable: u.AllowWritableFileShares,
		limits:        u.Limits,
	}
	if u.LinuxUser.UID != nil {
		p.linuxUID = *u.LinuxUser.UID
	}
	if u.LinuxUser.GID != nil {
		p.linuxGID = *u.LinuxUser.GID
	}
	for _, t := range f.Tenants {
		k := tenantKey{kind: tenantContainerd, name: t.ContainerdNamespace}
		if t.KubernetesNamespace != "" {
			k = tenantKey{kind: tenantKubernetes, name: t.KubernetesNamespace}
		}
		p.tenants[k] = tenantSetting{trusted: t.IsTrusted(), mode: t.Mode}
	}
	for id, m := range f.Rules {
		p.ruleModes[id] = m
	}
	if err := p.compileHostResources(u); err != nil {
		return nil, err
	}
	if rules == nil {
		rules = registry
	}
	for _, r := range rules {
		if r.platforms == nil || slices.Contains(r.platforms, nodeOS) {
			p.rules = append(p.rules, r)
		}
	}
	return p, nil
}

// compileHostResources normalises the host paths, disks and devices untrusted workloads
// may use, for the policy's platform (the file was validated: an error is a bad default).
func (p *Policy) compileHostResources(u Untrusted) error {
	hostPaths := u.Mounts.AllowedHostPaths
	if hostPaths == nil {
		hostPaths = DefaultAllowedHostPaths(p.platform)
	}
	for _, raw := range hostPaths {
		pp, err := compilePrefix(p.platform, raw)
		if err != nil {
			return fmt.Errorf("%w: mounts.allowedHostPaths: %v", ErrInvalid, err)
		}
		p.hostPaths = append(p.hostPaths, pp)
	}
	for _, raw := range u.AllowedHostPrograms {
		hp, err := parseProgram(p.platform, raw)
		if err != nil {
			return fmt.Errorf("%w: allowedHostPrograms: %v", ErrInvalid, err)
		}
		p.hostPrograms = append(p.hostPrograms, hp)
	}
	for _, raw := range orDefaultList(u.Stdio.AllowedPaths, DefaultStdioPaths(p.platform)) {
		pipe, dir, err := parseStdioEntry(p.platform, raw)
		if err != nil {
			return fmt.Errorf("%w: stdio.allowedPaths: %v", ErrInvalid, err)
		}
		if p.platform == Windows {
			p.stdioPipes = append(p.stdioPipes, pipe)
		} else {
			p.stdioDirs = append(p.stdioDirs, dir)
		}
	}
	for _, raw := range orDefaultList(u.Rootfs.AllowedSources, DefaultRootfsSources(p.platform)) {
		pp, err := compilePrefix(p.platform, raw)
		if err != nil {
			return fmt.Errorf("%w: rootfs.allowedSources: %v", ErrInvalid, err)
		}
		p.rootfsSources = append(p.rootfsSources, pp)
	}
	p.allowedFields = map[string]bool{}
	for _, f := range u.AllowedFields {
		p.allowedFields[f] = true
	}
	for _, d := range u.Mounts.AllowedDisks {
		p.disks = append(p.disks, normalizeDisk(p.platform, d))
	}
	for _, d := range u.Devices.Allowed {
		n, err := normalizeDevice(p.platform, d)
		if err != nil {
			return fmt.Errorf("%w: devices.allowed: %v", ErrInvalid, err)
		}
		p.devices = append(p.devices, n)
	}
	return nil
}

// Platform is the profile the policy applies.
func (p *Policy) Platform() Platform { return p.platform }

// Mode is the file's mode (a tenant may override it).
func (p *Policy) Mode() Mode { return p.mode }

// orDefaultList is v, or def when v is absent (nil; an empty list is kept).
func orDefaultList(v, def []string) []string {
	if v == nil {
		return def
	}
	return v
}

// parseProgram parses an allowedHostPrograms entry: an absolute host path.
func parseProgram(platform Platform, raw string) (hostPath, error) {
	hp, kind, err := parseHostPath(platform, raw)
	if err != nil {
		return hostPath{}, err
	}
	if kind != kindPath || len(hp.elems) == 0 {
		return hostPath{}, fmt.Errorf("%q is not a program's path", raw)
	}
	return hp, nil
}

// parseStdioEntry parses a stdio.allowedPaths entry: a pipe name prefix on Windows, a
// directory prefix on Linux.
func parseStdioEntry(platform Platform, raw string) (pipe string, dir pathPrefix, err error) {
	if platform == Windows {
		pipe, err = parsePipePrefix(raw)
		return pipe, pathPrefix{}, err
	}
	dir, err = compilePrefix(platform, raw)
	return "", dir, err
}

// parsePipePrefix parses a Windows stdio.allowedPaths entry \\.\pipe\<name prefix>.
func parsePipePrefix(raw string) (string, error) {
	name, ok := pipeName(raw)
	if !ok {
		return "", fmt.Errorf("%q is not \\\\.\\pipe\\ and a pipe name prefix of letters, digits, '.', '_' and '-'", raw)
	}
	return name, nil
}

func orDefault[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}

// normalizeDisk makes a disk source comparable: Windows folds "/" to "\" (case is folded
// when comparing); Linux compares exactly.
func normalizeDisk(p Platform, s string) string {
	if p == Linux {
		return s
	}
	return strings.ReplaceAll(s, "/", `\`)
}

// normalizeDevice validates and normalises a devices.allowed entry. Windows:
// "IDType://ID" (CRI's device host_path syntax, "class/ID" being short for "class://ID"),
// returned lower case; Linux: an absolute device path.
func normalizeDevice(p Platform, s string) (string, error) {
	if p == Linux {
		lp, err := parseLinuxPath(s)
		if err != nil {
			return "", err
		}
		if len(lp.elems) == 0 {
			return "", fmt.Errorf("%q is not a device path", s)
		}
		return lp.String(Linux), nil
	}
	if after, ok := strings.CutPrefix(s, "class/"); ok {
		s = "class://" + after
	}
	idType, id, ok := strings.Cut(s, "://")
	if !ok || idType == "" || id == "" {
		return "", fmt.Errorf("%q does not have the form IDType://ID (e.g. class://5B45201D-F2F2-4F3B-85BB-30FF1F953599)", s)
	}
	return windowsDeviceKey(idType, id), nil
}

func windowsDeviceKey(idType, id string) string {
	return strings.ToLower(idType) + "://" + strings.ToLower(id)
}
