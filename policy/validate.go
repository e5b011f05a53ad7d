package policy

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/isoguard/isoguard/shim/hooks"
)

// Semantic validation of a File. Every error names the field ("untrusted.mounts.
// allowedHostPaths[1]") and, for a parsed file, its line.

// FieldError is one problem of a policy file: the field, its line (for a parsed file; 0
// otherwise) and what is wrong. Errors about the file's content are *FieldError values,
// joined, wrapping ErrInvalid.
type FieldError struct {
	Line    int
	Field   string // e.g. "untrusted.mounts.allowedHostPaths[1]"
	Problem string
}

// Error renders "line N: field F: problem", leaving out what is unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "field %s: ", e.Field)
	}
	b.WriteString(e.Problem)
	return b.String()
}

type validator struct {
	f    *File
	errs []*FieldError
}

func (v *validator) add(path []any, format string, args ...any) {
	v.errs = append(v.errs, v.f.fieldError(path, fmt.Sprintf(format, args...)))
}

// validate checks the file's semantics. platform "" skips the platform-dependent checks
// (host paths, devices), which Compile runs once the node's OS is known.
func (f *File) validate(platform Platform) error {
	v := &validator{f: f}
	if f.APIVersion != APIVersion {
		v.add([]any{"apiVersion"}, "is %q, expected %q", f.APIVersion, APIVersion)
	}
	if f.Kind != Kind {
		v.add([]any{"kind"}, "is %q, expected %q", f.Kind, Kind)
	}
	if !f.Delegate.StdinFormat.Configurable() {
		v.add([]any{"delegate", "stdinFormat"}, "is %q, expected %s, %s or %s", f.Delegate.StdinFormat, hooks.StdinAuto, hooks.StdinAny, hooks.StdinBootstrap)
	}
	switch f.Platform {
	case "", Windows, Linux:
	default:
		v.add([]any{"platform"}, "is %q, expected windows or linux", f.Platform)
	}
	v.mode([]any{"mode"}, f.Mode)
	if f.CRINamespace != "" && (!isContainerdNamespace(f.CRINamespace)) {
		v.add([]any{"criNamespace"}, "%q is not a containerd namespace name", f.CRINamespace)
	}
	v.tenants()
	v.untrusted(platform)
	if f.Audit.MaxSizeMB < 0 || f.Audit.MaxSizeMB > 10240 {
		v.add([]any{"audit", "maxSizeMB"}, "is %d, expected 1 to 10240 (0: the default, 10)", f.Audit.MaxSizeMB)
	}
	if f.Audit.MaxBackups < 0 || f.Audit.MaxBackups > 1000 {
		v.add([]any{"audit", "maxBackups"}, "is %d, expected 1 to 1000 (0: the default, 5)", f.Audit.MaxBackups)
	}
	if f.Audit.Path != "" && !(strings.HasPrefix(f.Audit.Path, "/") || len(f.Audit.Path) > 2 && f.Audit.Path[1] == ':' && (f.Audit.Path[2] == '\\' || f.Audit.Path[2] == '/')) {
		v.add([]any{"audit", "path"}, "%q is not an absolute path", f.Audit.Path)
	}
	// Rules in a stable order, so that errors come out in file order for equal lines.
	ids := make([]string, 0, len(f.Rules))
	for id := range f.Rules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if ruleByID(id) == nil {
			v.add([]any{"rules", id}, "unknown rule ID %q (known: %s)", id, strings.Join(ruleIDs(), ", "))
			continue
		}
		v.mode([]any{"rules", id}, f.Rules[id])
	}
	if len(v.errs) == 0 {
		return nil
	}
	return invalid(v.errs)
}

// invalid joins field errors in file order, wrapping ErrInvalid.
func invalid(errs []*FieldError) error {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	joined := make([]error, len(errs))
	for i, e := range errs {
		joined[i] = e
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(joined...))
}

func (v *validator) mode(path []any, m Mode) {
	switch m {
	case "", Enforce, Audit:
	default:
		v.add(path, "mode %q is neither enforce nor audit", m)
	}
}

func (v *validator) tenants() {
	seen := map[tenantKey]int{}
	for i, t := range v.f.Tenants {
		at := []any{"tenants", i}
		var k tenantKey
		switch {
		case t.KubernetesNamespace != "" && t.ContainerdNamespace != "":
			v.add(at, "names both kubernetesNamespace and containerdNamespace; a tenant is one of them")
			continue
		case t.KubernetesNamespace != "":
			k = tenantKey{tenantKubernetes, t.KubernetesNamespace}
			if !isK8sNamespace(t.KubernetesNamespace) {
				v.add(append(at, "kubernetesNamespace"), "%q is not a Kubernetes namespace name (RFC 1123 label)", t.KubernetesNamespace)
			}
		case t.ContainerdNamespace != "":
			k = tenantKey{tenantContainerd, t.ContainerdNamespace}
			if !isContainerdNamespace(t.ContainerdNamespace) {
				v.add(append(at, "containerdNamespace"), "%q is not a containerd namespace name", t.ContainerdNamespace)
			}
		default:
			v.add(at, "names no tenant: set kubernetesNamespace or containerdNamespace")
			continue
		}
		if j, dup := seen[k]; dup {
			v.add(at, "duplicate tenant %s (also tenants[%d], %s)", k, j, v.f.where("tenants", j))
		} else {
			seen[k] = i
		}
		v.mode(append(at, "mode"), t.Mode)
		if t.Mode != "" && t.IsTrusted() {
			v.add(append(at, "mode"), "has no effect on a trusted tenant (no rule applies to it); set `trusted: false` to evaluate this tenant's workloads in mode %s", t.Mode)
		}
	}
}

func (k tenantKey) String() string {
	if k.kind == tenantKubernetes {
		return fmt.Sprintf("kubernetesNamespace %q", k.name)
	}
	return fmt.Sprintf("containerdNamespace %q", k.name)
}

func (v *validator) untrusted(platform Platform) {
	v.users()
	v.isolation(platform)
	v.hostResources(platform)
	v.annotations()
	v.limits(platform)
}

// at is the path of a field of the untrusted section.
func at(p ...any) []any { return append([]any{"untrusted"}, p...) }

func (v *validator) users() {
	u := v.f.Untrusted
	if u.User != "" {
		if err := checkUserName(u.User); err != nil {
			v.add(at("user"), "%v", err)
		}
	}
	for i, n := range u.AllowedUsers {
		if err := checkUserName(n); err != nil {
			v.add(at("allowedUsers", i), "%v", err)
		}
	}
	if u.LinuxUser.UID != nil && *u.LinuxUser.UID == 0 {
		v.add(at("linuxUser", "uid"), "0 is root; untrusted workloads must not run as root")
	}
	if u.LinuxUser.GID != nil && *u.LinuxUser.GID == 0 {
		v.add(at("linuxUser", "gid"), "0 is the root group; untrusted workloads must not run in it")
	}
}

func (v *validator) isolation(platform Platform) {
	u := v.f.Untrusted
	if u.AllowWritableFileShares && platform == Linux {
		v.add(at("allowWritableFileShares"), "is a Windows setting; this policy is for linux")
	}
	if u.SandboxRuntime != "" {
		v.add(at("sandboxRuntime"), "is no longer supported: a sandbox runtime behind the runc shim (Options.BinaryName) hangs CRI pods; name the sandbox runtime's own containerd shim in untrusted.sandbox.shim (docs/policy.md)")
	}
	sb := u.Sandbox
	if sb == (Sandbox{}) {
		return
	}
	if platform == Windows {
		v.add(at("sandbox"), "is a Linux setting; on Windows untrusted pods run in Hyper-V through runhcs")
		return
	}
	for _, f := range []struct{ name, path string }{{"shim", sb.Shim}, {"configPath", sb.ConfigPath}} {
		switch {
		case f.path == "" && f.name == "shim":
			v.add(at("sandbox", "shim"), "is required: the sandbox runtime's containerd shim")
		case f.path != "" && (!strings.HasPrefix(f.path, "/") || path.Clean(f.path) != f.path || strings.IndexByte(f.path, 0) >= 0):
			v.add(at("sandbox", f.name), "%q is not a clean absolute path", f.path)
		}
	}
	if strings.ContainsFunc(sb.TypeURL, func(r rune) bool { return r <= ' ' }) {
		v.add(at("sandbox", "typeUrl"), "%q is not a type URL", sb.TypeURL)
	}
	if !sb.StdinFormat.Configurable() {
		v.add(at("sandbox", "stdinFormat"), "is %q, expected %s, %s or %s", sb.StdinFormat, hooks.StdinAuto, hooks.StdinAny, hooks.StdinBootstrap)
	}
}

// hostResources checks the host paths, disks and devices untrusted workloads may use;
// paths and devices only once the platform is known.
func (v *validator) hostResources(platform Platform) {
	u := v.f.Untrusted
	if platform != "" {
		for i, raw := range u.Mounts.AllowedHostPaths {
			if _, err := compilePrefix(platform, raw); err != nil {
				v.add(at("mounts", "allowedHostPaths", i), "%v", err)
			}
		}
		for i, d := range u.Devices.Allowed {
			if _, err := normalizeDevice(platform, d); err != nil {
				v.add(at("devices", "allowed", i), "%v", err)
			}
		}
		for i, raw := range u.AllowedHostPrograms {
			if _, err := parseProgram(platform, raw); err != nil {
				v.add(at("allowedHostPrograms", i), "%v", err)
			}
		}
		for i, raw := range u.Stdio.AllowedPaths {
			if _, _, err := parseStdioEntry(platform, raw); err != nil {
				v.add(at("stdio", "allowedPaths", i), "%v", err)
			}
		}
		for i, raw := range u.Rootfs.AllowedSources {
			if _, err := compilePrefix(platform, raw); err != nil {
				v.add(at("rootfs", "allowedSources", i), "%v", err)
			}
		}
	}
	for i, f := range u.AllowedFields {
		if !isAllowableField(platform, f) {
			v.add(at("allowedFields", i), "%q is not a denied field of the field table (isoguard policy fields --class denied)", f)
		}
	}
	for i, d := range u.Mounts.AllowedDisks {
		if strings.TrimSpace(d) == "" || strings.ContainsFunc(d, func(r rune) bool { return r < 0x20 }) {
			v.add(at("mounts", "allowedDisks", i), "%q is not a disk source", d)
		}
	}
}

// isAllowableField reports whether f is the config.json path of a denied row of the field
// table (for platform; "" = either).
func isAllowableField(platform Platform, f string) bool {
	for _, d := range fieldTable {
		if d.Class != FieldDenied || (platform != "" && !d.appliesTo(platform)) {
			continue
		}
		for _, p := range []Platform{Windows, Linux} {
			if d.appliesTo(p) && specPath(d.Scope, p, d.Path) == f {
				return true
			}
		}
	}
	return false
}

func (v *validator) annotations() {
	a := v.f.Untrusted.Annotations
	for i, k := range a.Allowed {
		switch {
		case k == "" || k == "*":
			v.add(at("annotations", "allowed", i), "%q would allow every annotation", k)
		case strings.Contains(strings.TrimSuffix(k, "*"), "*"):
			v.add(at("annotations", "allowed", i), "%q: \"*\" is only allowed at the end (a prefix)", k)
		case !isControlledKey(k):
			v.add(at("annotations", "allowed", i), "%q has none of the controlled prefixes %s; other annotations are never restricted", k, strings.Join(ControlledPrefixes(), ", "))
		}
	}
	switch a.OnDisallowed {
	case "", "strip", "deny":
	default:
		v.add(at("annotations", "onDisallowed"), "is %q, expected strip or deny", a.OnDisallowed)
	}
}

func (v *validator) limits(platform Platform) {
	l := v.f.Untrusted.Limits
	if l.CPUMaximum > 10000 {
		v.add(at("limits", "cpuMaximum"), "%d is above 10000 (100%%)", l.CPUMaximum)
	}
	if platform == Windows && l.CPUShares > 10000 {
		v.add(at("limits", "cpuShares"), "%d is above 10000, the largest Windows CPU weight", l.CPUShares)
	}
	if l.Pids < 0 {
		v.add(at("limits", "pids"), "%d is negative", l.Pids)
	}
}

func ruleIDs() []string {
	ids := make([]string, 0, len(registry))
	for _, r := range registry {
		ids = append(ids, r.id)
	}
	return ids
}
