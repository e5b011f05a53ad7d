package policy

import (
	"fmt"
	"strings"
)

/*
The standard streams of an untrusted workload's task (Create) and execs (Exec) go only
where the client's own fifos and pipes are. The shims open what the request names, as
root or SYSTEM:

  - Linux: a path (or fifo://) is opened as a fifo if it is one, else an existing host file
    is appended to (stdout, stderr) or streamed into the container (stdin, containerd/fifo
    OpenFifo checks no type); file://PATH creates and appends to a host file (runc shim
    cmd/containerd-shim-runc-v2/process/io.go createIO; gVisor's shim
    pkg/shim/v1/proc/init.go opens paths the same way). containerd makes its fifos below
    its state directory: CRI <state>/io.containerd.grpc.v1.cri/containers/<id>/io/...,
    ctr and other cio clients <state>/fifo/... (pkg/cio/io_unix.go).
  - Windows: a path is dialled as a named pipe with no restriction on which pipe
    (internal/cmd/io_npipe.go NewNpipeIO): any host pipe the shim can open, as SYSTEM.
    containerd's clients name theirs \\.\pipe\ctr-<id>-stdin|stdout|stderr
    (pkg/cio/io_windows.go). file:// is an error in runhcs.

So a path must lie below untrusted.stdio.allowedPaths (Linux: directories, default
/run/containerd; Windows: pipe name prefixes, default \\.\pipe\ctr-, and the pipe name may
hold only letters, digits, '.', '_' and '-'). file:// follows the same rule on Linux and is
denied on Windows. binary:// and binary-v2:// are programs (untrusted.host-programs); any
other scheme is denied (isoguard does not know what a shim makes of it). Terminal is safe.

**Restricted Fields:**

CreateTaskRequest stdin, stdout, stderr; ExecProcessRequest stdin, stdout, stderr

**Allowed Values:** empty; a path below untrusted.stdio.allowedPaths (Windows: a pipe
\\.\pipe\<name> whose name starts with an allowed prefix); Linux file://PATH with PATH
below untrusted.stdio.allowedPaths
*/

var ruleStdio = &rule{
	id:      "untrusted.stdio",
	threats: []string{"T17"},
	calls:   []Call{CallCreate, CallExec},
	action:  "denial",
	summary: "standard streams only below untrusted.stdio.allowedPaths (Linux: containerd's fifo directories; Windows: \\\\.\\pipe\\ctr-* pipes): no host file or foreign pipe a shim would open as root / SYSTEM; unknown URI schemes denied",
	check:   checkStdio,
}

func checkStdio(ev *evaluation) {
	for _, st := range stdioStreams(ev.in.Stdio) {
		if st.value == "" {
			continue
		}
		target := st.value
		if u, ok := stdioURI(st.value); ok {
			switch {
			case u.Scheme == "binary" || u.Scheme == "binary-v2":
				continue // a program: untrusted.host-programs
			case ev.platform == Linux && (u.Scheme == "file" || u.Scheme == "fifo"):
				target = u.Path
			default:
				ev.deny(st.name, "%s has URI scheme %q, which isoguard does not admit for untrusted workloads", st.name, u.Scheme)
				continue
			}
		}
		if err := ev.p.stdioAllowed(target, ev.mountPlaceholders()); err != nil {
			ev.deny(st.name, "%s %s: %v", st.name, target, err)
		}
	}
}

// stdioAllowed reports why a stream's path is not allowed (nil: it is).
func (p *Policy) stdioAllowed(s string, ph placeholders) error {
	if p.platform == Windows {
		name, ok := pipeName(s)
		if !ok {
			return fmt.Errorf("is not a named pipe \\\\.\\pipe\\<name> (name of letters, digits, '.', '_', '-')")
		}
		for _, prefix := range p.stdioPipes {
			if hasPrefixFold(name, prefix) {
				return nil
			}
		}
		return fmt.Errorf("is not a pipe of untrusted.stdio.allowedPaths")
	}
	hp, err := parseLinuxPath(s)
	if err != nil {
		return err
	}
	for i := range p.stdioDirs {
		if p.stdioDirs[i].match(p.platform, hp, ph) {
			return nil
		}
	}
	return fmt.Errorf("is not below untrusted.stdio.allowedPaths")
}

// pipeName returns the name of a plain local named pipe path \\.\pipe\NAME whose name is
// made of letters, digits, '.', '_' and '-' (no separator: Win32 would normalise "..").
func pipeName(s string) (string, bool) {
	const root = `\\.\pipe\`
	if !hasPrefixFold(s, root) {
		return "", false
	}
	name := s[len(root):]
	if name == "" || strings.Trim(name, ".") == "" {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isLetter(c) || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", false
		}
	}
	return name, true
}
