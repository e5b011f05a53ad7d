//go:build integration && linux

package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/isoguard/isoguard/integration/harness"
)

// The TOML printed by `isoguard config containerd`, as containerd's own code decodes it:
// the real containerd 1.7.35 and 2.4.2 binaries (Linux builds, which hold the same CRI
// config types and decoding as the Windows ones; only the built-in defaults differ) load
// the file and print what they decoded (`containerd --config FILE config dump`).
//
// Each check is proven able to fail: the same file with one key misspelled must fail it.
// containerd 2.4 warns "Ignoring unknown key" and drops the key; 1.7 drops it silently;
// either way the dumped value is missing or left at its default.

const (
	dumpShimPath      = `C:\Program Files\isoguard\containerd-shim-isoguard-v1.exe`
	dumpLinuxShimPath = "/usr/local/bin/containerd-shim-isoguard-v1"
	dumpPause         = "example.com/pause:3.10"
)

// dumpCase is one containerd generation.
type dumpCase struct {
	containerd string // harness version: "1.7" or "2.4"
	cli        string // isoguard config containerd --version
	plugin     string // the CRI runtime plugin's table
}

var dumpCases = []dumpCase{
	{"1.7", "1.7", `plugins."io.containerd.grpc.v1.cri"`},
	{"2.4", "2", `plugins."io.containerd.cri.v1.runtime"`},
}

func containerdBinary(t *testing.T, version string) string {
	t.Helper()
	dir, err := harness.BinDir(version)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "containerd")
	if _, err := os.Stat(bin); err != nil {
		if version == "1.7" && os.Getenv("ISOGUARD_SKIP_CTRD17") == "1" {
			t.Skipf("containerd 1.7 not installed (ISOGUARD_SKIP_CTRD17=1)")
		}
		t.Fatalf("containerd %s: %v: run `bash scripts/deps.sh linux` (cache %s)", version, err, harness.Cache())
	}
	return bin
}

// isoguardConfig runs the built isoguard CLI.
func isoguardConfig(t *testing.T, args ...string) string {
	t.Helper()
	cli := harness.BuildBinary(t, "./cmd/isoguard")
	out, err := exec.Command(cli, append([]string{"config", "containerd"}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("isoguard config containerd %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	return string(out)
}

// configDump runs `containerd --config FILE config dump` and returns stdout and stderr.
func configDump(t *testing.T, bin, config string) (dump, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", path, "config", "dump")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// dumpTables reads containerd's dump: [table] headers (quotes normalised to ") and
// key = value lines.
func dumpTables(s string) map[string]map[string]string {
	tables := map[string]map[string]string{"": {}}
	cur := ""
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			cur = strings.ReplaceAll(strings.Trim(line, "[]"), "'", `"`)
			tables[cur] = map[string]string{}
		default:
			if k, v, ok := strings.Cut(line, "="); ok {
				tables[cur][strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return tables
}

// unquoteTOML decodes a dumped TOML string ('literal' or "basic"); anything else is
// returned as is.
func unquoteTOML(raw string) string {
	if len(raw) >= 2 && raw[0] == '\'' && raw[len(raw)-1] == '\'' {
		return raw[1 : len(raw)-1]
	}
	if s, err := strconv.Unquote(raw); err == nil {
		return s
	}
	return raw
}

// expectation is what the dump must show.
type expectation struct {
	linux        bool // the Linux handler (runc options), else the Windows one (runhcs options)
	plugin       string
	handlers     []string // every one routed through isoguard
	defaultName  string   // "" = not checked
	sandboxImage string   // "" = not checked
	v2           bool
}

// checkDump lists every way the decoded configuration differs from want.
func checkDump(dump string, want expectation) error {
	tables := dumpTables(dump)
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if want.defaultName != "" {
		if got := unquoteTOML(tables[want.plugin+".containerd"]["default_runtime_name"]); got != want.defaultName {
			bad("default_runtime_name = %q, want %q", got, want.defaultName)
		}
	}
	if want.sandboxImage != "" {
		got := unquoteTOML(tables[want.plugin]["sandbox_image"])
		if want.v2 {
			got = unquoteTOML(tables[`plugins."io.containerd.cri.v1.images".pinned_images`]["sandbox"])
		}
		if got != want.sandboxImage {
			bad("sandbox image = %q, want %q", got, want.sandboxImage)
		}
	}
	for _, h := range want.handlers {
		rt, ok := tables[want.plugin+".containerd.runtimes."+h]
		if !ok {
			bad("runtime %s missing", h)
			continue
		}
		runtimeType, shimPath := "io.containerd.runhcs.v1", dumpShimPath
		wantOpts := map[string]string{
			"SandboxIsolation":        "1",
			"SandboxPlatform":         "windows/amd64",
			"ScaleCpuLimitsToSandbox": "true",
			"ScrubLogs":               "true",
		}
		if want.linux {
			runtimeType, shimPath = "io.containerd.runc.v2", dumpLinuxShimPath
			wantOpts = map[string]string{"SystemdCgroup": "true"}
		}
		for k, v := range map[string]string{
			"runtime_type": runtimeType,
			"runtime_path": shimPath,
		} {
			if got := unquoteTOML(rt[k]); got != v {
				bad("%s %s = %q, want %q", h, k, got, v)
			}
		}
		for _, k := range []string{"pod_annotations", "container_annotations"} {
			if rt[k] != "[]" {
				bad("%s %s = %s, want []", h, k, rt[k])
			}
		}
		if want.v2 && unquoteTOML(rt["sandboxer"]) != "podsandbox" {
			bad("%s sandboxer = %s, want podsandbox", h, rt["sandboxer"])
		}
		opts := tables[want.plugin+".containerd.runtimes."+h+".options"]
		for k, v := range wantOpts {
			if got := unquoteTOML(opts[k]); got != v {
				bad("%s options.%s = %q, want %s", h, k, opts[k], v)
			}
		}
		for k, v := range opts {
			if _, ok := wantOpts[k]; ok {
				continue
			}
			// containerd 2.x's built-in runc handler comes with runc's options at their zero
			// values (internal/cri/config/config_unix.go); anything else is not isoguard's.
			if !want.linux || (v != "''" && v != `""` && v != "0" && v != "false") {
				bad("%s options = %v, want exactly %v", h, opts, wantOpts)
				break
			}
		}
	}
	return errors.Join(errs...)
}

// typos are misspellings of keys the generated config sets. Each must make checkDump fail.
var typos = []struct{ from, to string }{
	{"runtime_type =", "runtimetype ="},
	{"runtime_path =", "runtime_paht ="},
	{"default_runtime_name =", "default_runtime_nam ="},
	{"SandboxIsolation =", "SandboxIsolaton ="},
	{"SandboxPlatform =", "SandboxPlatfrom ="},
	{"ScrubLogs =", "ScrubLog ="},
}

// TestConfigContainerdDump: the generated configuration, loaded alone.
func TestConfigContainerdDump(t *testing.T) {
	for _, c := range dumpCases {
		t.Run(c.containerd, func(t *testing.T) {
			bin := containerdBinary(t, c.containerd)
			gen := isoguardConfig(t, "--version", c.cli, "--default", "--replace-builtin", "--sandbox-image", dumpPause)
			want := expectation{
				plugin:       c.plugin,
				handlers:     []string{"isoguard", "runhcs-wcow-process", "runhcs-wcow-hypervisor"},
				defaultName:  "isoguard",
				sandboxImage: dumpPause,
				v2:           c.cli == "2",
			}
			dump, stderr, err := configDump(t, bin, gen)
			if err != nil {
				t.Fatalf("containerd %s rejects the generated config: %v\n%s\n%s", c.containerd, err, stderr, gen)
			}
			if strings.Contains(stderr, "unknown key") {
				t.Errorf("containerd %s ignores keys of the generated config:\n%s", c.containerd, stderr)
			}
			if err := checkDump(dump, want); err != nil {
				t.Fatalf("containerd %s decoded something else than isoguard generated:\n%v\n--- generated\n%s", c.containerd, err, gen)
			}
			t.Logf("containerd %s decodes every key of the generated config", c.containerd)

			// The checks above can fail: a misspelled key is dropped or left at its default.
			for _, typo := range typos {
				bad := strings.Replace(gen, typo.from, typo.to, 1)
				if bad == gen {
					t.Fatalf("typo %q: not in the generated config", typo.from)
				}
				dump, stderr, err := configDump(t, bin, bad)
				if err == nil && checkDump(dump, want) == nil {
					t.Errorf("containerd %s: with %q misspelled as %q the dump still passes the checks", c.containerd, typo.from, typo.to)
				}
				if c.cli == "2" && err == nil && !strings.Contains(stderr, "Ignoring unknown key") && !strings.HasPrefix(typo.from, "Sandbox") && !strings.HasPrefix(typo.from, "Scrub") {
					// options is a free-form table: only the struct keys draw a warning.
					t.Errorf("containerd 2.4 did not warn about %q: %s", typo.to, stderr)
				}
			}
		})
	}
}

// linuxTypos are misspellings of keys the generated Linux config sets.
var linuxTypos = []struct{ from, to string }{
	{"runtime_type =", "runtimetype ="},
	{"runtime_path =", "runtime_paht ="},
	{"default_runtime_name =", "default_runtime_nam ="},
	{"SystemdCgroup =", "SystemdCgrop ="},
}

// TestConfigContainerdDumpLinux: the Linux handler (runc's runtime type and options, the
// built-in runc handler replaced), loaded alone by containerd 1.7 and 2.4, decodes to what
// isoguard generated; every misspelled key is noticed.
func TestConfigContainerdDumpLinux(t *testing.T) {
	for _, c := range dumpCases {
		t.Run(c.containerd, func(t *testing.T) {
			bin := containerdBinary(t, c.containerd)
			gen := isoguardConfig(t, "--os", "linux", "--version", c.cli, "--default", "--replace-builtin", "--systemd-cgroup", "--sandbox-image", dumpPause)
			want := expectation{linux: true, plugin: c.plugin, handlers: []string{"isoguard", "runc"}, defaultName: "isoguard", sandboxImage: dumpPause, v2: c.cli == "2"}
			dump, stderr, err := configDump(t, bin, gen)
			if err != nil {
				t.Fatalf("containerd %s rejects the generated config: %v\n%s\n%s", c.containerd, err, stderr, gen)
			}
			if err := checkDump(dump, want); err != nil {
				t.Fatalf("containerd %s decoded something else than isoguard generated:\n%v\n--- generated\n%s", c.containerd, err, gen)
			}
			for _, typo := range linuxTypos {
				bad := strings.Replace(gen, typo.from, typo.to, 1)
				if bad == gen {
					t.Fatalf("typo %q: not in the generated config", typo.from)
				}
				if dump, _, err := configDump(t, bin, bad); err == nil && checkDump(dump, want) == nil {
					t.Errorf("containerd %s: with %q misspelled as %q the dump still passes the checks", c.containerd, typo.from, typo.to)
				}
			}
		})
	}
}

// windowsDefaults17 are the runtimes containerd's `config default` prints on Windows
// (pkg/cri/config/config_windows.go; 2.x internal/cri/config/config_windows.go), as an
// operator's config.toml holds them: the built-in handlers with their annotation
// pass-through lists, which isoguard's config must override.
const windowsDefaultRuntimes = `
[%[1]s.containerd]
  default_runtime_name = "runhcs-wcow-process"

[%[1]s.containerd.runtimes.runhcs-wcow-process]
  runtime_type = "io.containerd.runhcs.v1"
  container_annotations = ["io.microsoft.container.*"]

[%[1]s.containerd.runtimes.runhcs-wcow-process.options]
  ScrubLogs = true

[%[1]s.containerd.runtimes.runhcs-wcow-hypervisor]
  runtime_type = "io.containerd.runhcs.v1"
  pod_annotations = ["io.microsoft.virtualmachine.*"]
  container_annotations = ["io.microsoft.container.*"]

[%[1]s.containerd.runtimes.runhcs-wcow-hypervisor.options]
  ScrubLogs = true
  SandboxIsolation = 1
  ScaleCpuLimitsToSandbox = true
`

// TestConfigContainerdDropIn2 is install.ps1's method on containerd 2.x: config.toml (here
// with the Windows built-in handlers and another setting of the operator's) imports the
// generated file, and containerd merges it key by key: the operator's settings stay, the
// handler is added, and --default / --replace-builtin take over what config.toml set,
// including the annotation pass-through lists (an empty list replaces a non-empty one).
func TestConfigContainerdDropIn2(t *testing.T) {
	bin := containerdBinary(t, "2.4")
	plugin := `plugins."io.containerd.cri.v1.runtime"`
	dir := t.TempDir()
	dropIn := filepath.Join(dir, "isoguard.toml")
	gen := isoguardConfig(t, "--version", "2", "--default", "--replace-builtin", "--sandbox-image", dumpPause)
	if err := os.WriteFile(dropIn, []byte(gen), 0o600); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf("version = 3\nimports = [%q]\n\n[%s]\n  max_container_log_line_size = 12345\n", dropIn, plugin) +
		fmt.Sprintf(windowsDefaultRuntimes, plugin)
	want := expectation{
		plugin:       plugin,
		handlers:     []string{"isoguard", "runhcs-wcow-process", "runhcs-wcow-hypervisor"},
		defaultName:  "isoguard",
		sandboxImage: dumpPause,
		v2:           true,
	}
	dump, stderr, err := configDump(t, bin, main)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if err := checkDump(dump, want); err != nil {
		t.Fatalf("config.toml + drop-in:\n%v", err)
	}
	if got := dumpTables(dump)[plugin]["max_container_log_line_size"]; got != "12345" {
		t.Errorf("the operator's max_container_log_line_size = %s after the import, want 12345", got)
	}

	// Without the drop-in's empty lists, the built-in handlers would keep passing
	// io.microsoft.* annotations from pods: the override is what makes them safe.
	bad := strings.ReplaceAll(gen, "pod_annotations = []\n", "")
	if err := os.WriteFile(dropIn, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	dump, _, err = configDump(t, bin, main)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDump(dump, want); err == nil || !strings.Contains(err.Error(), "runhcs-wcow-hypervisor pod_annotations") {
		t.Errorf("a drop-in without pod_annotations = [] should leave runhcs-wcow-hypervisor's list in place; check result: %v", err)
	}
}

// TestConfigContainerdAppend17 is install.ps1's method on containerd 1.7: the handler's
// tables (no `version` line, no --default) appended to the operator's config.toml. And the
// reason for it: an imported file replaces config.toml's whole CRI section in 1.7.
func TestConfigContainerdAppend17(t *testing.T) {
	bin := containerdBinary(t, "1.7")
	plugin := `plugins."io.containerd.grpc.v1.cri"`
	operator := fmt.Sprintf("version = 2\n\n[%s]\n  max_container_log_line_size = 12345\n", plugin) + fmt.Sprintf(windowsDefaultRuntimes, plugin)

	gen := isoguardConfig(t, "--version", "1.7")
	var tables []string
	for _, l := range strings.Split(gen, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "version") {
			tables = append(tables, l)
		}
	}
	dump, stderr, err := configDump(t, bin, operator+"\n# BEGIN isoguard\n"+strings.Join(tables, "\n")+"\n# END isoguard\n")
	if err != nil {
		t.Fatalf("appended tables: %v\n%s", err, stderr)
	}
	if err := checkDump(dump, expectation{plugin: plugin, handlers: []string{"isoguard"}, defaultName: "runhcs-wcow-process"}); err != nil {
		t.Fatalf("appended tables:\n%v", err)
	}
	got := dumpTables(dump)
	if got[plugin]["max_container_log_line_size"] != "12345" || got[plugin+".containerd.runtimes.runhcs-wcow-hypervisor"] == nil {
		t.Errorf("appending lost the operator's settings")
	}

	// The same tables as an imported file replace the operator's CRI section.
	dir := t.TempDir()
	dropIn := filepath.Join(dir, "isoguard.toml")
	if err := os.WriteFile(dropIn, []byte(gen), 0o600); err != nil {
		t.Fatal(err)
	}
	dump, stderr, err = configDump(t, bin, strings.Replace(operator, "version = 2\n", fmt.Sprintf("version = 2\nimports = [%q]\n", dropIn), 1))
	if err != nil {
		t.Fatalf("imported: %v\n%s", err, stderr)
	}
	got = dumpTables(dump)
	if got[plugin]["max_container_log_line_size"] == "12345" || got[plugin+".containerd.runtimes.runhcs-wcow-process"] != nil {
		t.Errorf("containerd 1.7 merged an imported CRI section; install.ps1 could use a drop-in on 1.7 too (docs/containerd-config.md says it cannot)")
	}
}
