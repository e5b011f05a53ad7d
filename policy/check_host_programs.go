package policy

import (
	"fmt"
	"net/url"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/isoguard/isoguard/shim/hooks"
)

/*
Untrusted workloads make the node run no program of their choosing: every program their
calls name runs on the host, outside the boundary, as the shim's user (root, SYSTEM).

  - OCI hooks, every kind. runc runs prestart, createRuntime, poststart and poststop on the
    host and createContainer before pivot_root, with the host's paths visible
    (libcontainer/process_linux.go, rootfs_linux.go prepareRootfs, state_linux.go);
    gVisor's runsc runs prestart, createRuntime, poststart and poststop as host processes
    and createContainer in its gofer (runsc/specutils/hooks.go executeHook,
    runsc/container/container.go); startContainer runs in the container (runc) or is
    skipped (runsc), but is denied too: the hook's path is a program the workload did not
    bring. hcsshim does not run hooks for Windows containers, so a hook there is denied as
    a request nobody honours.
  - A standard stream URI binary://PATH (and containerd 2.3+'s binary-v2://): the runc
    shim runs PATH with the query's arguments as root (cmd/containerd-shim-runc-v2/process/
    io.go createIO, io_util.go NewBinaryCmd); runhcs runs it as SYSTEM when stdout has the
    scheme (internal/cmd/io.go NewUpstreamIO, io_binary.go NewBinaryIO). gVisor's shim
    parses no URI (pkg/shim/v1/proc/init.go), so there it would at most name a file.

A program is allowed only when untrusted.allowedHostPrograms names its path exactly (after
normalisation; Windows case-insensitively). Arguments and environment of an allowed hook are
not restricted: the operator allowed the program knowing them.

**Restricted Fields:**

spec.hooks.{prestart,createRuntime,createContainer,startContainer,poststart,poststop}[*].path
CreateTaskRequest / ExecProcessRequest stdin, stdout, stderr with scheme binary or binary-v2

**Allowed Values:** none, or a program listed in untrusted.allowedHostPrograms
*/

var ruleHostPrograms = &rule{
	id:      "untrusted.host-programs",
	threats: []string{"T16"},
	calls:   []Call{CallStart, CallCreate, CallExec},
	action:  "denial",
	summary: "OCI hooks of every kind and binary:// standard streams (programs the node would run as root / SYSTEM) are denied unless untrusted.allowedHostPrograms names the program",
	check:   checkHostPrograms,
}

func checkHostPrograms(ev *evaluation) {
	if s := ev.in.Spec; s != nil && s.Hooks != nil && ev.in.Call != CallExec {
		for _, k := range hookKinds(s.Hooks) {
			for i, h := range k.hooks {
				if !ev.p.hostProgramAllowed(h.Path) {
					ev.deny(fmt.Sprintf("hooks.%s[%d].path", k.name, i), "OCI %s hook %s would run on the host; it is not in untrusted.allowedHostPrograms", k.name, h.Path)
				}
			}
		}
	}
	for _, st := range stdioStreams(ev.in.Stdio) {
		u, ok := stdioURI(st.value)
		if !ok || (u.Scheme != "binary" && u.Scheme != "binary-v2") {
			continue
		}
		prog := binaryProgram(ev.platform, u)
		if !ev.p.hostProgramAllowed(prog) {
			ev.deny(st.name, "%s %s:// runs %s on the host; it is not in untrusted.allowedHostPrograms", st.name, u.Scheme, prog)
		}
	}
}

type hookKind struct {
	name  string
	hooks []specs.Hook
}

// hookKinds lists every kind of OCI hook of runtime-spec (a test checks the list against
// specs.Hooks' fields).
func hookKinds(h *specs.Hooks) []hookKind {
	//nolint:staticcheck // Prestart is deprecated in the spec and still run by runc and runsc.
	return []hookKind{
		{"prestart", h.Prestart},
		{"createRuntime", h.CreateRuntime},
		{"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer},
		{"poststart", h.Poststart},
		{"poststop", h.Poststop},
	}
}

type stdioStream struct{ name, value string }

func stdioStreams(s hooks.Stdio) []stdioStream {
	return []stdioStream{{"stdin", s.Stdin}, {"stdout", s.Stdout}, {"stderr", s.Stderr}}
}

// stdioURI parses a stream that carries a URI scheme ("scheme:" followed by "//"), as the
// shims do (url.Parse); a path, a Windows drive path or a pipe is not a URI.
func stdioURI(s string) (*url.URL, bool) {
	if schemeLen(s) == 0 {
		return nil, false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return &url.URL{Scheme: strings.ToLower(s[:schemeLen(s)-3]), Opaque: s}, true
	}
	return u, true
}

// binaryProgram is the program of a binary:// URI as the shims take it: the URL's path
// (runhcs also drops the "\" before a drive letter: binary:///C:\log.exe is C:\log.exe,
// internal/cmd/io_binary.go sanitizePath).
func binaryProgram(p Platform, u *url.URL) string {
	prog := u.Path
	if u.Opaque != "" && prog == "" {
		prog = u.Opaque
	}
	if p == Windows && len(prog) > 3 && (prog[0] == '/' || prog[0] == '\\') && prog[2] == ':' {
		prog = prog[1:]
	}
	return prog
}

// hostProgramAllowed reports whether untrusted.allowedHostPrograms names the program.
func (p *Policy) hostProgramAllowed(prog string) bool {
	hp, kind, err := parseHostPath(p.platform, prog)
	if err != nil || kind != kindPath {
		return false
	}
	for _, a := range p.hostPrograms {
		if samePath(p.platform, a, hp) {
			return true
		}
	}
	return false
}

// samePath compares two normalised paths (Windows: ASCII case-insensitively).
func samePath(platform Platform, a, b hostPath) bool {
	eq := foldEqual
	if platform == Linux {
		eq = func(x, y string) bool { return x == y }
	}
	if len(a.elems) != len(b.elems) || !eq(a.root, b.root) {
		return false
	}
	for i := range a.elems {
		if !eq(a.elems[i], b.elems[i]) {
			return false
		}
	}
	return true
}
