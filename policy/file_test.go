package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"
)

const header = "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\n"

func TestParseExamples(t *testing.T) {
	for _, c := range []struct {
		file string
		os   Platform
	}{
		{"policy-windows.yaml", Windows},
		{"policy-linux.yaml", Linux},
	} {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "examples", c.file))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Compile(f, c.os)
			if err != nil {
				t.Fatal(err)
			}
			if p.Platform() != c.os || p.Mode() != Enforce {
				t.Errorf("platform %s mode %s", p.Platform(), p.Mode())
			}
			other := Linux
			if c.os == Linux {
				other = Windows
			}
			if _, err := Compile(f, other); err == nil || !strings.Contains(err.Error(), ": field platform: the policy is for") {
				t.Errorf("compiling for %s: %v, want a platform error", other, err)
			}
		})
	}
}

func TestParseMinimalAndDefaults(t *testing.T) {
	f, err := Parse([]byte(header))
	if err != nil {
		t.Fatal(err)
	}
	for _, nodeOS := range []Platform{Windows, Linux} {
		p, err := Compile(f, nodeOS)
		if err != nil {
			t.Fatal(err)
		}
		if p.mode != Enforce || p.criNamespace != "k8s.io" || p.user != "ContainerUser" || p.linuxUID != 65534 || p.linuxGID != 65534 || p.annDeny || p.allowWritable {
			t.Errorf("%s: defaults: %+v", nodeOS, p)
		}
		var raws []string
		for _, pp := range p.hostPaths {
			raws = append(raws, pp.raw)
		}
		if !reflect.DeepEqual(raws, DefaultAllowedHostPaths(nodeOS)) {
			t.Errorf("%s: host paths %v", nodeOS, raws)
		}
	}
	// An explicit empty list allows no host path at all.
	f, err = Parse([]byte(header + "untrusted:\n  mounts:\n    allowedHostPaths: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(f, Windows)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.hostPaths) != 0 {
		t.Errorf("allowedHostPaths: [] gave %v", p.hostPaths)
	}
}

// The integration tests' policy (shim side): a delegate section and one trusted namespace.
func TestParseShimTestPolicy(t *testing.T) {
	f, err := Parse([]byte(header + "tenants:\n  - containerdNamespace: isoguard-test-1\ndelegate:\n  path: /usr/bin/containerd-shim-runc-v2\n  stdinFormat: any\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Delegate.Path != "/usr/bin/containerd-shim-runc-v2" || f.Delegate.StdinFormat != "any" || !f.Tenants[0].IsTrusted() {
		t.Errorf("%+v", f)
	}
	if _, err := Compile(f, Linux); err != nil {
		t.Fatal(err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		yaml string
		os   Platform // Compile as well when set
		want []string // substrings of the error
	}{
		{"empty", "", "", []string{"the file is empty"}},
		{"unknown field", header + "tenants:\n  - kubernetesNamespace: a\n    trustd: true\n", "", []string{"line 5: field tenants[0].trustd: field trustd not found"}},
		{"wrong type", header + "untrusted:\n  limits:\n    uvmMemoryMB: lots\n", "", []string{"line 5: field untrusted.limits.uvmMemoryMB: cannot unmarshal !!str `lots` into uint64"}},
		{"negative unsigned", header + "untrusted:\n  linuxUser:\n    uid: -1\n", "", []string{"line 5: field untrusted.linuxUser.uid:", "-1"}},
		{"duplicate key", header + "mode: audit\nmode: enforce\n", "", []string{`line 4: field mode: mapping key "mode" already defined at line 3`}},
		{"two documents", header + "---\n" + header, "", []string{"more than one YAML document"}},
		{"api version", "apiVersion: isoguard.dev/v1\nkind: NodePolicy\n", "", []string{`line 1: field apiVersion: is "isoguard.dev/v1", expected "isoguard.dev/v1alpha1"`}},
		{"kind", "apiVersion: isoguard.dev/v1alpha1\nkind: Policy\n", "", []string{`line 2: field kind: is "Policy"`}},
		{"stdin format", header + "delegate:\n  stdinFormat: json\n", "", []string{`line 4: field delegate.stdinFormat: is "json"`}},
		{"platform", header + "platform: darwin\n", "", []string{`line 3: field platform: is "darwin"`}},
		{"mode", header + "mode: warn\n", "", []string{`line 3: field mode: mode "warn" is neither enforce nor audit`}},
		{"cri namespace", header + "criNamespace: 'k8s io'\n", "", []string{"line 3: field criNamespace:"}},
		{"duplicate tenant", header + "tenants:\n  - kubernetesNamespace: team-a\n  - containerdNamespace: team-a\n  - kubernetesNamespace: team-a\n", "", []string{`line 6: field tenants[2]: duplicate tenant kubernetesNamespace "team-a" (also tenants[0], line 4: field tenants[0])`}},
		{"tenant both", header + "tenants:\n  - kubernetesNamespace: a\n    containerdNamespace: b\n", "", []string{"line 4: field tenants[0]: names both"}},
		{"tenant none", header + "tenants:\n  - mode: audit\n", "", []string{"line 4: field tenants[0]: names no tenant"}},
		{"kubernetes namespace", header + "tenants:\n  - kubernetesNamespace: Team_A\n", "", []string{`line 4: field tenants[0].kubernetesNamespace: "Team_A" is not a Kubernetes namespace name`}},
		{"containerd namespace", header + "tenants:\n  - containerdNamespace: 'a b'\n", "", []string{`line 4: field tenants[0].containerdNamespace: "a b" is not a containerd namespace name`}},
		{"mode on trusted tenant", header + "tenants:\n  - kubernetesNamespace: a\n    mode: audit\n", "", []string{"line 5: field tenants[0].mode: has no effect on a trusted tenant"}},
		{"tenant mode", header + "tenants:\n  - kubernetesNamespace: a\n    trusted: false\n    mode: dryrun\n", "", []string{`line 6: field tenants[0].mode: mode "dryrun"`}},
		{"admin user", header + "untrusted:\n  user: BUILTIN\\Administrators\n", "", []string{`line 4: field untrusted.user: user "BUILTIN\\Administrators" is administrator-equivalent`}},
		{"admin allowed user", header + "untrusted:\n  allowedUsers: [appuser, ContainerAdministrator]\n", "", []string{`line 4: field untrusted.allowedUsers[1]: user "ContainerAdministrator" is administrator-equivalent`}},
		{"root uid", header + "untrusted:\n  linuxUser:\n    uid: 0\n    gid: 0\n", "", []string{"line 5: field untrusted.linuxUser.uid: 0 is root", "line 6: field untrusted.linuxUser.gid: 0 is the root group"}},
		{"sandbox runtime (runc BinaryName) refused", header + "untrusted:\n  sandboxRuntime: /usr/bin/runsc\n", "", []string{`line 4: field untrusted.sandboxRuntime: is no longer supported: a sandbox runtime behind the runc shim (Options.BinaryName) hangs CRI pods`}},
		{"sandbox shim relative", header + "untrusted:\n  sandbox:\n    shim: bin/containerd-shim-runsc-v1\n", "", []string{`line 5: field untrusted.sandbox.shim: "bin/containerd-shim-runsc-v1" is not a clean absolute path`}},
		{"sandbox shim missing", header + "untrusted:\n  sandbox:\n    configPath: /etc/runsc.toml\n", "", []string{`line 5: field untrusted.sandbox.shim: is required`}},
		{"sandbox config unclean", header + "untrusted:\n  sandbox:\n    shim: /bin/s\n    configPath: /etc/../runsc.toml\n", "", []string{`line 6: field untrusted.sandbox.configPath: "/etc/../runsc.toml" is not a clean absolute path`}},
		{"sandbox stdin format", header + "untrusted:\n  sandbox:\n    shim: /bin/s\n    stdinFormat: json\n", "", []string{`line 6: field untrusted.sandbox.stdinFormat: is "json"`}},
		{"sandbox on windows", header + "platform: windows\nuntrusted:\n  sandbox:\n    shim: /bin/s\n", "", []string{"line 6: field untrusted.sandbox: is a Linux setting"}},
		{"writable shares on linux", header + "untrusted:\n  allowWritableFileShares: true\n", Linux, []string{"line 4: field untrusted.allowWritableFileShares: is a Windows setting"}},
		{"host path relative (windows, at parse)", header + "platform: windows\nuntrusted:\n  mounts:\n    allowedHostPaths: ['C:\\ok\\', 'var\\lib']\n", "", []string{`line 6: field untrusted.mounts.allowedHostPaths[1]: path var\lib is not absolute`}},
		{"host path drive relative (at compile)", header + "untrusted:\n  mounts:\n    allowedHostPaths:\n      - 'C:data'\n", Windows, []string{`line 6: field untrusted.mounts.allowedHostPaths[0]: path C:data is relative`}},
		{"host path root", header + "untrusted:\n  mounts:\n    allowedHostPaths: ['/']\n", Linux, []string{`allowedHostPaths[0]: "/" is a root`}},
		{"host path placeholder", header + "untrusted:\n  mounts:\n    allowedHostPaths: ['/var/lib/kubelet/pods/pod-{podUID}/']\n", Linux, []string{"a placeholder ({podUID}, {sandboxID}, {containerID}) must be a whole path element"}},
		{"host path pipe", header + "untrusted:\n  mounts:\n    allowedHostPaths: ['\\\\.\\pipe\\x']\n", Windows, []string{"is not a host directory"}},
		{"host path dotdot (linux)", header + "untrusted:\n  mounts:\n    allowedHostPaths: ['/var/../etc']\n", Linux, []string{`has a ".." element`}},
		{"device windows", header + "untrusted:\n  devices:\n    allowed: ['5B45201D-F2F2-4F3B-85BB-30FF1F953599']\n", Windows, []string{"line 5: field untrusted.devices.allowed[0]:", "IDType://ID"}},
		{"device linux", header + "untrusted:\n  devices:\n    allowed: [fuse]\n", Linux, []string{"line 5: field untrusted.devices.allowed[0]: path fuse is not absolute"}},
		{"annotation key", header + "untrusted:\n  annotations:\n    allowed: [example.com/x, 'io.microsoft.*.count', '*']\n", "", []string{
			`line 5: field untrusted.annotations.allowed[0]: "example.com/x" has none of the controlled prefixes`,
			`allowed[1]: "io.microsoft.*.count": "*" is only allowed at the end`,
			`allowed[2]: "*" would allow every annotation`,
		}},
		{"on disallowed", header + "untrusted:\n  annotations:\n    onDisallowed: warn\n", "", []string{`line 5: field untrusted.annotations.onDisallowed: is "warn"`}},
		{"cpu maximum", header + "untrusted:\n  limits:\n    cpuMaximum: 20000\n", "", []string{"line 5: field untrusted.limits.cpuMaximum: 20000 is above 10000"}},
		{"windows cpu shares", header + "untrusted:\n  limits:\n    cpuShares: 20000\n", Windows, []string{"line 5: field untrusted.limits.cpuShares: 20000 is above 10000"}},
		{"pids", header + "untrusted:\n  limits:\n    pids: -5\n", "", []string{"line 5: field untrusted.limits.pids: -5 is negative"}},
		{"rule id", header + "rules:\n  untrusted.hostpaths: audit\n", "", []string{`line 4: field rules.untrusted.hostpaths: unknown rule ID "untrusted.hostpaths" (known: untrusted.isolation, `}},
		{"internal rule id", header + "rules:\n  internal.error: audit\n", "", []string{`unknown rule ID "internal.error"`}},
		{"rule mode", header + "rules:\n  untrusted.hostpath: off\n", "", []string{`line 4: field rules.untrusted.hostpath: mode "off"`}},
		{"unknown nested field", header + "untrusted:\n  onDisallowed: x\n", "", []string{"line 4: field untrusted.onDisallowed: field onDisallowed not found"}},
		{"several semantic errors", header + "mode: x\ntenants:\n  - kubernetesNamespace: A\nuntrusted:\n  user: SYSTEM\n", "", []string{"line 3: field mode", "\nline 5: field tenants[0].kubernetesNamespace", "\nline 7: field untrusted.user"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse([]byte(c.yaml))
			if err == nil && c.os != "" {
				_, err = Compile(f, c.os)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	if _, err := Compile(nil, Windows); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil file: %v", err)
	}
	f, _ := Parse([]byte(header))
	if _, err := Compile(f, "plan9"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad node OS: %v", err)
	}
	// A File built in code (no line numbers) still names the field.
	_, err := Compile(&File{APIVersion: APIVersion, Kind: Kind, Untrusted: Untrusted{User: "Administrator"}}, Windows)
	if err == nil || !strings.Contains(err.Error(), "field untrusted.user: user \"Administrator\"") {
		t.Errorf("code-built file: %v", err)
	}
}

// TestFieldErrorsCarryTheirLine: every problem of a file is a *FieldError with its line and
// field as data, in file order, whether yaml found it or the semantic checks did.
func TestFieldErrorsCarryTheirLine(t *testing.T) {
	// Semantic errors, listed by the validator in another order than the file's.
	_, err := Parse([]byte(header + "rules:\n  untrusted.x: audit\nmode: x\ntenants:\n  - kubernetesNamespace: A\n"))
	got := fieldErrors(err)
	want := []FieldError{{Line: 4, Field: "rules.untrusted.x"}, {Line: 5, Field: "mode"}, {Line: 7, Field: "tenants[0].kubernetesNamespace"}}
	if len(got) != len(want) {
		t.Fatalf("got %d field errors %v, want %d", len(got), err, len(want))
	}
	for i, w := range want {
		if got[i].Line != w.Line || got[i].Field != w.Field || got[i].Problem == "" {
			t.Errorf("error %d: %+v, want line %d field %s", i, got[i], w.Line, w.Field)
		}
	}
	// yaml's own errors become FieldErrors too.
	_, err = Parse([]byte(header + "untrusted:\n  limits:\n    uvmMemoryMB: lots\n    pids: many\n"))
	got = fieldErrors(err)
	if len(got) != 2 || got[0].Line != 5 || got[0].Field != "untrusted.limits.uvmMemoryMB" || got[1].Line != 6 || strings.HasPrefix(got[0].Problem, "line") {
		t.Fatalf("yaml errors: %+v (%v)", got, err)
	}
}

// TestErrorLinesExist: a line an error names is a line of the file. yaml places the empty
// value of a document that ends without a line break ("---") on the line after the last
// one (found by FuzzParse).
func TestErrorLinesExist(t *testing.T) {
	utf16le := func(s string) string {
		b := []byte{0xff, 0xfe}
		for _, u := range utf16.Encode([]rune(s)) {
			b = append(b, byte(u), byte(u>>8))
		}
		return string(b)
	}
	for in, want := range map[string]int{
		"---": 1, "---\n": 2, "\n\n---": 3, "\r\n\r---": 3,
		// yaml reads UTF-16 after a byte order mark (PowerShell 5 writes files so), where LS
		// and NEL end lines too (found by FuzzParse: "\xff\xfe( 00" is LS, U+3030).
		utf16le("\u2028\u2028---"): 3, utf16le("#\u0a0d\n\u0085---"): 3,
	} {
		_, err := Parse([]byte(in))
		fes := fieldErrors(err)
		if len(fes) == 0 {
			t.Fatalf("%q: %v, want field errors", in, err)
		}
		for _, fe := range fes {
			if fe.Field == "apiVersion" && fe.Line != want {
				t.Errorf("%q: %q names line %d, want %d", in, fe, fe.Line, want)
			}
		}
	}
}
