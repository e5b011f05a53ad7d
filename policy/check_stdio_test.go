package policy

import (
	"testing"

	"github.com/isoguard/isoguard/shim/hooks"
)

// criStdio is what containerd's CRI plugin sends a Create: fifos below its state directory
// (Linux, internal/cri/io/helpers.go newFifos) or \\.\pipe\ctr-* pipes (Windows,
// pkg/cio/io_windows.go).
func criStdio(p Platform, id string) hooks.Stdio {
	if p == Windows {
		return hooks.Stdio{Stdin: `\\.\pipe\ctr-` + id + `-stdin`, Stdout: `\\.\pipe\ctr-` + id + `-stdout`, Stderr: `\\.\pipe\ctr-` + id + `-stderr`}
	}
	dir := "/run/containerd/io.containerd.grpc.v1.cri/containers/" + id + "/io/2873951021/"
	return hooks.Stdio{Stdout: dir + id + "-stdout", Stderr: dir + id + "-stderr"}
}

func withStdio(in Input, st hooks.Stdio) Input {
	in.Stdio = st
	return in
}

// Golden fixture cases of rule untrusted.stdio (testdata/untrusted.stdio/).
func stdioCases(add fixtureAdder) {
	const r = "untrusted.stdio"
	add(r, true, "linux-cri-fifos", lin, "CRI's fifos below containerd's state directory", nil, func(t testing.TB) Input {
		return withStdio(linuxCreate(t), criStdio(Linux, containerID))
	})
	add(r, true, "linux-ctr-fifos", lin, "ctr's fifos (/run/containerd/fifo) with stdin", nil, func(t testing.TB) Input {
		d := "/run/containerd/fifo/1964385220/"
		return withStdio(linuxCreate(t), hooks.Stdio{Stdin: d + "c1-stdin", Stdout: d + "c1-stdout", Stderr: d + "c1-stderr", Terminal: true})
	})
	add(r, true, "linux-exec-fifos", lin, "an exec's fifos", nil, func(t testing.TB) Input {
		return withStdio(linuxExec(1000), criStdio(Linux, "exec-1"))
	})
	add(r, true, "windows-cri-pipes", win, `CRI's \\.\pipe\ctr-* pipes`, nil, func(t testing.TB) Input {
		return withStdio(winCreate(t), criStdio(Windows, containerID))
	})
	add(r, true, "windows-exec-pipes", win, "an exec's pipes", nil, func(t testing.TB) Input {
		return withStdio(winExec("ContainerUser"), criStdio(Windows, "exec-1"))
	})
	for _, c := range []struct{ name, desc string }{
		{"/etc/shadow", "stdin from a host file (the shim streams it into the container)"},
		{"/root/.ssh/authorized_keys", "stdout appended to a host file"},
		{"/run/containerd/../../etc/shadow", `a ".." out of the state directory`},
		{"run/containerd/fifo/x", "a relative path"},
		{"file:///var/log/tenant.log", "file:// outside the state directory (the runc shim creates it)"},
		{"tcp://10.0.0.1:9000", "an unknown scheme"},
	} {
		add(r, false, "linux-"+slug(c.name), lin, c.desc+": denied", T("T17"), func(t testing.TB) Input {
			st := criStdio(Linux, containerID)
			st.Stdin = c.name
			return withStdio(linuxCreate(t), st)
		})
	}
	add(r, false, "linux-exec-host-file", lin, "an exec whose stdout is a host file: denied", T("T17"), func(t testing.TB) Input {
		return withStdio(linuxExec(1000), hooks.Stdio{Stdout: "/etc/cron.d/x"})
	})
	for _, c := range []struct{ name, desc string }{
		{`\\.\pipe\docker_engine`, "the Docker engine's pipe (the shim dials it as SYSTEM)"},
		{`\\.\pipe\ctr-a\..\docker_engine`, `a ".." inside the pipe name`},
		{`\\server\pipe\ctr-x-stdout`, "a pipe on another machine"},
		{`C:\Windows\System32\config\SAM`, "a host file"},
		{`file:///C:/logs/x.log`, "file:// (runhcs refuses it)"},
	} {
		add(r, false, "windows-"+slug(c.name), win, c.desc+": denied", T("T17"), func(t testing.TB) Input {
			st := criStdio(Windows, containerID)
			st.Stdout = c.name
			return withStdio(winCreate(t), st)
		})
	}
}

// slug makes a fixture file name of a path.
func slug(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		case len(b) > 0 && b[len(b)-1] != '-':
			b = append(b, '-')
		}
	}
	for len(b) > 0 && b[len(b)-1] == '-' {
		b = b[:len(b)-1]
	}
	return string(b)
}
