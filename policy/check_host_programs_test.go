package policy

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/isoguard/isoguard/shim/hooks"
)

func withHook(in Input, kind string, h specs.Hook) Input {
	if in.Spec.Hooks == nil {
		in.Spec.Hooks = &specs.Hooks{}
	}
	for _, k := range hookKinds(in.Spec.Hooks) {
		if k.name == kind {
			v := reflect.ValueOf(in.Spec.Hooks).Elem().FieldByNameFunc(func(n string) bool { return foldEqual(n, kind) })
			v.Set(reflect.Append(v, reflect.ValueOf(h)))
			return in
		}
	}
	panic("no hook kind " + kind)
}

// Golden fixture cases of rule untrusted.host-programs (testdata/untrusted.host-programs/).
func hostProgramsCases(add fixtureAdder) {
	const r = "untrusted.host-programs"
	add(r, true, "allowed-hook", "linux-programs", "a hook whose program allowedHostPrograms names", nil, func(t testing.TB) Input {
		return withHook(linuxCreate(t), "createRuntime", specs.Hook{Path: "/usr/bin/nvidia-ctk", Args: []string{"nvidia-ctk", "hook"}})
	})
	add(r, true, "allowed-binary-log", "linux-programs", "a binary:// log program allowedHostPrograms names", nil, func(t testing.TB) Input {
		return withStdio(linuxCreate(t), hooks.Stdio{Stdout: "binary:///usr/bin/nvidia-ctk?x=1"})
	})
	for _, kind := range []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"} {
		add(r, false, "linux-"+slug(kind), lin, "an OCI "+kind+" hook: denied", T("T16"), func(t testing.TB) Input {
			return withHook(linuxCreate(t), kind, specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cp /bin/sh /tmp/x"}})
		})
	}
	add(r, false, "other-program", "linux-programs", "a hook whose program is not the allowed one: denied", T("T16"), func(t testing.TB) Input {
		return withHook(linuxCreate(t), "poststart", specs.Hook{Path: "/usr/bin/nvidia-ctk2"})
	})
	add(r, false, "windows-hook", win, "an OCI hook on Windows: denied", T("T16"), func(t testing.TB) Input {
		return withHook(winCreate(t), "prestart", specs.Hook{Path: `C:\Windows\System32\cmd.exe`})
	})
	add(r, false, "linux-binary-log", lin, "stdout binary:// (the runc shim runs it as root): denied", T("T16"), func(t testing.TB) Input {
		return withStdio(linuxCreate(t), hooks.Stdio{Stdout: "binary:///bin/sh?-c=id"})
	})
	add(r, false, "linux-binary-v2-log", lin, "stderr binary-v2:// (containerd 2.3+): denied", T("T16"), func(t testing.TB) Input {
		return withStdio(linuxCreate(t), hooks.Stdio{Stderr: "binary-v2:///usr/local/bin/logger"})
	})
	add(r, false, "linux-exec-binary-log", lin, "an exec's stdout binary://: denied", T("T16"), func(t testing.TB) Input {
		return withStdio(linuxExec(1000), hooks.Stdio{Stdout: "binary:///usr/bin/logger"})
	})
	add(r, false, "windows-binary-log", win, `stdout binary:///C:\... (runhcs runs it as SYSTEM): denied`, T("T16"), func(t testing.TB) Input {
		return withStdio(winCreate(t), hooks.Stdio{Stdout: `binary:///C:\tools\logger.exe?tag=x`})
	})
}

func TestHookKindsCoverSpec(t *testing.T) {
	n := reflect.TypeFor[specs.Hooks]().NumField()
	if got := len(hookKinds(&specs.Hooks{})); got != n {
		t.Fatalf("hookKinds lists %d kinds, runtime-spec's Hooks has %d fields", got, n)
	}
}

func TestBinaryProgram(t *testing.T) {
	for _, c := range []struct {
		p         Platform
		uri, want string
	}{
		{Linux, "binary:///usr/bin/logger?a=b", "/usr/bin/logger"},
		{Windows, `binary:///C:\tools\logger.exe`, `C:\tools\logger.exe`},
		{Windows, "binary:///C:/tools/logger.exe", "C:/tools/logger.exe"},
	} {
		u, ok := stdioURI(c.uri)
		if !ok {
			t.Fatalf("%s: not a URI", c.uri)
		}
		if got := binaryProgram(c.p, u); got != c.want {
			t.Errorf("%s: program %q, want %q", c.uri, got, c.want)
		}
	}
	for _, s := range []string{`\\.\pipe\ctr-x`, "/run/containerd/fifo/x", `C:\x`} {
		if _, ok := stdioURI(s); ok {
			t.Errorf("%s taken for a URI", s)
		}
	}
}
