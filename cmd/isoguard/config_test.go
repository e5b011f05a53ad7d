package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
)

var cfgUpdate = flag.Bool("update-config", false, "rewrite the golden files under testdata/config")

// cfgRun runs `isoguard ARGS...` in process.
func cfgRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// cfgGolden compares got with testdata/config/NAME, or rewrites it with -update-config.
func cfgGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "config", name)
	if *cfgUpdate {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./cmd/isoguard -run %s -update-config` to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update-config if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestConfigUsage(t *testing.T) {
	code, out, errOut := cfgRun("config")
	if code != exitUsage || out != "" || !strings.Contains(errOut, "isoguard config containerd --version 1.7|2") {
		t.Errorf("config without subcommand: exit %d, stdout %q, stderr %q; want exit 2 and the usage on stderr", code, out, errOut)
	}
	for _, h := range []string{"--help", "-h", "help"} {
		code, out, errOut = cfgRun("config", h)
		if code != exitOK || !strings.Contains(out, "isoguard config runtimeclass") || errOut != "" {
			t.Errorf("config %s: exit %d, stdout %q, stderr %q; want exit 0 and the usage on stdout", h, code, out, errOut)
		}
	}
	code, out, errOut = cfgRun("config", "cri")
	if code != exitUsage || out != "" || !strings.Contains(errOut, `unknown subcommand "cri"`) {
		t.Errorf("config cri: exit %d, stdout %q, stderr %q; want exit 2 naming the subcommand", code, out, errOut)
	}
	for _, sub := range []string{"containerd", "runtimeclass"} {
		code, out, errOut = cfgRun("config", sub, "--help")
		if code != exitOK || !strings.Contains(out, "Usage: isoguard config "+sub) || !strings.Contains(out, "-handler") || errOut != "" {
			t.Errorf("config %s --help: exit %d, stdout %q, stderr %q; want exit 0 and the flags on stdout", sub, code, out, errOut)
		}
	}
}

// containerdCases are the golden outputs of `isoguard config containerd`.
var containerdCases = []struct {
	golden string
	args   []string
}{
	{"containerd-1.7.toml", []string{"--version", "1.7"}},
	{"containerd-1.7-default.toml", []string{"--version", "1.7", "--default", "--sandbox-image", "mcr.microsoft.com/oss/kubernetes/pause:3.9"}},
	{"containerd-2.toml", []string{"--version", "2"}},
	{"containerd-2-default-replace.toml", []string{"--version", "2", "--default", "--replace-builtin", "--sandbox-image", "mcr.microsoft.com/oss/kubernetes/pause:3.9"}},
	{"containerd-2-process-custom.toml", []string{"--version", "2.4", "--handler", "tenant-hv", "--shim-path", `D:\isoguard bin\shim's.exe`, "--isolation", "process", "--sandbox-platform", "windows/arm64"}},
	{"containerd-1.7-vm-size.toml", []string{"--version", "1.7", "--vm-memory-mb", "4096", "--vm-processors", "4"}},
	{"containerd-linux-2.toml", []string{"--os", "linux", "--version", "2"}},
	{"containerd-linux-2-default-replace.toml", []string{"--os", "linux", "--version", "2", "--default", "--replace-builtin", "--systemd-cgroup"}},
	{"containerd-linux-1.7-default.toml", []string{"--os", "linux", "--version", "1.7", "--default", "--shim-path", "/opt/isoguard/containerd-shim-isoguard-v1"}},
}

func TestConfigContainerdGolden(t *testing.T) {
	for _, c := range containerdCases {
		t.Run(c.golden, func(t *testing.T) {
			code, out, errOut := cfgRun(append([]string{"config", "containerd"}, c.args...)...)
			if code != exitOK || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			cfgGolden(t, c.golden, out)
		})
	}
}

// cfgTOMLTables is a minimal reader for the TOML this command prints (and for
// `containerd config dump`): [table] headers, `key = value` lines, comments. Headers are
// normalised to double-quoted plugin names; values are kept raw.
func cfgTOMLTables(t *testing.T, s string) map[string]map[string]string {
	t.Helper()
	tables := map[string]map[string]string{"": {}}
	cur := ""
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("line %d: bad header %q", i+1, line)
			}
			cur = strings.ReplaceAll(strings.Trim(line, "[]"), "'", `"`)
			if _, dup := tables[cur]; dup {
				t.Fatalf("line %d: table [%s] defined twice (invalid TOML)", i+1, cur)
			}
			tables[cur] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("line %d: not key = value: %q", i+1, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if _, dup := tables[cur][k]; dup {
				t.Fatalf("line %d: key %s set twice in [%s]", i+1, k, cur)
			}
			tables[cur][k] = v
		}
	}
	return tables
}

// cfgTOMLValue decodes a raw TOML string value ('literal' or "basic").
func cfgTOMLValue(t *testing.T, raw string) string {
	t.Helper()
	if len(raw) >= 2 && raw[0] == '\'' && raw[len(raw)-1] == '\'' {
		return raw[1 : len(raw)-1]
	}
	s, err := strconv.Unquote(raw)
	if err != nil {
		t.Fatalf("%s is not a TOML string: %v", raw, err)
	}
	return s
}

func TestConfigContainerdStructure(t *testing.T) {
	for _, tc := range []struct {
		version, plugin string
		fileVersion     string
	}{
		{"1.7", `plugins."io.containerd.grpc.v1.cri"`, "2"},
		{"1.7.35", `plugins."io.containerd.grpc.v1.cri"`, "2"},
		{"2", `plugins."io.containerd.cri.v1.runtime"`, "3"},
		{"v2.4.2", `plugins."io.containerd.cri.v1.runtime"`, "3"},
		{"2.x", `plugins."io.containerd.cri.v1.runtime"`, "3"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			code, out, errOut := cfgRun("config", "containerd", "--version", tc.version, "--handler", "tenants", "--default", "--replace-builtin", "--sandbox-image", "example.com/pause:1")
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			tables := cfgTOMLTables(t, out)
			if got := tables[""]["version"]; got != tc.fileVersion {
				t.Errorf("version = %s, want %s", got, tc.fileVersion)
			}
			if got := cfgTOMLValue(t, tables[tc.plugin+".containerd"]["default_runtime_name"]); got != "tenants" {
				t.Errorf("default_runtime_name = %q, want tenants", got)
			}
			image := tables[tc.plugin]["sandbox_image"]
			if tc.fileVersion == "3" {
				image = tables[`plugins."io.containerd.cri.v1.images".pinned_images`]["sandbox"]
			}
			if got := cfgTOMLValue(t, image); got != "example.com/pause:1" {
				t.Errorf("sandbox image = %q", got)
			}
			for _, h := range []string{"tenants", "runhcs-wcow-process", "runhcs-wcow-hypervisor"} {
				rt := tables[tc.plugin+".containerd.runtimes."+h]
				if rt == nil {
					t.Fatalf("no runtime table for %s in\n%s", h, out)
				}
				if got := cfgTOMLValue(t, rt["runtime_type"]); got != "io.containerd.runhcs.v1" {
					t.Errorf("%s runtime_type = %q", h, got)
				}
				if got := cfgTOMLValue(t, rt["runtime_path"]); got != DefaultShimPath {
					t.Errorf("%s runtime_path = %q", h, got)
				}
				if rt["pod_annotations"] != "[]" || rt["container_annotations"] != "[]" {
					t.Errorf("%s: pod_annotations = %s, container_annotations = %s; want both []", h, rt["pod_annotations"], rt["container_annotations"])
				}
				if tc.fileVersion == "3" && cfgTOMLValue(t, rt["sandboxer"]) != "podsandbox" {
					t.Errorf("%s: sandboxer = %s, want podsandbox", h, rt["sandboxer"])
				}
				opts := tables[tc.plugin+".containerd.runtimes."+h+".options"]
				if opts["SandboxIsolation"] != "1" || cfgTOMLValue(t, opts["SandboxPlatform"]) != "windows/amd64" || opts["ScrubLogs"] != "true" {
					t.Errorf("%s options = %v", h, opts)
				}
			}
		})
	}
}

// TestConfigContainerdOptionsAreRunhcsFields checks every key of every options table
// against the options type of the handler's runtime type: hcsshim's runhcs Options
// (Windows) or containerd's runc Options (Linux). containerd decodes the table into that
// struct by Go field name (TOML through go-toml, containerd's GenerateRuntimeOptions), and
// ignores a key that names no field. A typo would silently drop the setting.
func TestConfigContainerdOptionsAreRunhcsFields(t *testing.T) {
	for _, c := range containerdCases {
		typ := reflect.TypeOf(runhcsopts.Options{})
		linux := slices.Contains(c.args, "linux")
		if linux {
			typ = reflect.TypeOf(runcopts.Options{})
		}
		_, out, _ := cfgRun(append([]string{"config", "containerd"}, c.args...)...)
		n := 0
		for name, table := range cfgTOMLTables(t, out) {
			if !strings.HasSuffix(name, ".options") {
				continue
			}
			for k, v := range table {
				n++
				f, ok := typ.FieldByName(k)
				if !ok || !f.IsExported() {
					t.Errorf("%s: [%s] %s is no field of %s", c.golden, name, k, typ)
					continue
				}
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				var kindOK bool
				switch {
				case v == "true" || v == "false":
					kindOK = ft.Kind() == reflect.Bool
				case strings.HasPrefix(v, "'") || strings.HasPrefix(v, `"`):
					kindOK = ft.Kind() == reflect.String
				default:
					_, err := strconv.ParseInt(v, 10, 32)
					kindOK = err == nil && ft.Kind() == reflect.Int32
				}
				if !kindOK {
					t.Errorf("%s: [%s] %s = %s does not fit runhcs Options.%s (%s)", c.golden, name, k, v, k, f.Type)
				}
			}
		}
		if n == 0 && !linux {
			t.Errorf("%s: no options found", c.golden)
		}
	}
	// The numbers this command writes are runhcs's enum values.
	if runhcsopts.Options_HYPERVISOR != 1 || runhcsopts.Options_PROCESS != 0 {
		t.Errorf("runhcs SandboxIsolation values changed: HYPERVISOR=%d PROCESS=%d", runhcsopts.Options_HYPERVISOR, runhcsopts.Options_PROCESS)
	}
}

func TestConfigContainerdErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no version", nil, "--version: required"},
		{"version 3", []string{"--version", "3"}, `--version: "3" is not a supported containerd version`},
		{"version 1.6", []string{"--version", "1.6"}, "containerd before 1.7 is not supported"},
		{"version word", []string{"--version", "latest"}, `"latest" is not a supported containerd version`},
		{"handler upper case", []string{"--version", "2", "--handler", "IsoGuard"}, `--handler: "IsoGuard" is not a lowercase RFC 1123 label`},
		{"handler dot", []string{"--version", "2", "--handler", "iso.guard"}, "--handler:"},
		{"handler long", []string{"--version", "2", "--handler", strings.Repeat("a", 64)}, "--handler:"},
		{"handler builtin", []string{"--version", "2", "--handler", "runhcs-wcow-process", "--replace-builtin"}, "built-in handler name"},
		{"relative shim", []string{"--version", "2", "--shim-path", `isoguard\shim.exe`}, "--shim-path: \"isoguard\\\\shim.exe\" is not an absolute Windows path"},
		{"linux shim", []string{"--version", "1.7", "--shim-path", "/usr/bin/containerd-shim-isoguard-v1"}, "--shim-path:"},
		{"control char", []string{"--version", "2", "--sandbox-image", "a\nb"}, "--sandbox-image:"},
		{"isolation", []string{"--version", "2", "--isolation", "vm"}, `--isolation: "vm": want hyperv`},
		{"platform", []string{"--version", "2", "--sandbox-platform", "linux/amd64"}, "--sandbox-platform:"},
		{"vm memory small", []string{"--version", "2", "--vm-memory-mb", "64"}, "--vm-memory-mb: 64: want 0"},
		{"vm memory negative", []string{"--version", "2", "--vm-memory-mb", "-1"}, "--vm-memory-mb:"},
		{"vm processors", []string{"--version", "2", "--vm-processors", "5000"}, "--vm-processors: 5000"},
		{"vm processors word", []string{"--version", "2", "--vm-processors", "two"}, `invalid value "two" for flag -vm-processors`},
		{"unknown flag", []string{"--version", "2", "--handlr", "x"}, "flag provided but not defined: -handlr"},
		{"positional", []string{"--version", "2", "extra"}, `unexpected argument "extra"`},
		{"os", []string{"--version", "2", "--os", "darwin"}, `--os: "darwin": want windows or linux`},
		{"linux windows shim", []string{"--os", "linux", "--version", "2", "--shim-path", `C:\isoguard\shim.exe`}, "--shim-path: \"C:\\\\isoguard\\\\shim.exe\" is not a clean absolute path"},
		{"linux isolation", []string{"--os", "linux", "--version", "2", "--isolation", "process"}, "--isolation: is a Windows setting"},
		{"linux vm size", []string{"--os", "linux", "--version", "2", "--vm-memory-mb", "2048"}, "--vm-memory-mb: is a Windows setting"},
		{"linux builtin", []string{"--os", "linux", "--version", "2", "--handler", "runc", "--replace-builtin"}, "built-in handler name"},
		{"windows systemd", []string{"--version", "2", "--systemd-cgroup"}, "--systemd-cgroup: is a Linux setting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cfgRun(append([]string{"config", "containerd"}, tc.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q does not contain %q", errOut, tc.want)
			}
		})
	}
}

func TestTOMLString(t *testing.T) {
	for in, want := range map[string]string{
		`C:\Program Files\x.exe`: `'C:\Program Files\x.exe'`,
		`D:\it's\x.exe`:          `"D:\\it's\\x.exe"`,
		"a\tb":                   `"a\u0009b"`,
		`say "hi"`:               `'say "hi"'`,
	} {
		if got := tomlString(in); got != want {
			t.Errorf("tomlString(%q) = %s, want %s", in, got, want)
		}
	}
}
