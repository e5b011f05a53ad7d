package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options adjust a private containerd started by ContainerdWith.
type Options struct {
	// PathPrepend is put in front of containerd's PATH (before the version's bin dir),
	// e.g. the directory of a shim binary from BuildBinary.
	PathPrepend []string
	// ExtraConfig is TOML appended to the generated config file: tables only
	// (e.g. `[plugins."io.containerd.runtime.v2.task"]` blocks), no top-level keys.
	ExtraConfig string
	// Env is added to containerd's environment (KEY=VALUE).
	Env []string
	// Config, when set, writes the whole config file instead of the generated one (given
	// the daemon with its paths set); the CRI tier (CRIContainerd) uses it.
	Config func(d *Daemon) string
}

// Daemon is a private containerd instance: own root, state, sockets and config, run with
// the binaries of one version. Every field is set by Containerd and must not be changed.
type Daemon struct {
	Version      string // "1.6", "1.7" or "2.4"
	Dir          string // private base directory (short, under /tmp), removed at cleanup
	Address      string // gRPC socket
	TTRPCAddress string // ttrpc socket (shims publish events here)
	BinDir       string // containerd, ctr and containerd-shim-runc-v2 of this version
	Root         string
	State        string
	ConfigPath   string
	LogPath      string // containerd's stdout+stderr, across restarts
	// Namespace is ctr's default namespace (CONTAINERD_NAMESPACE), unique per daemon so
	// that runc state (/run/containerd/runc/NS/ID) of parallel daemons cannot collide.
	Namespace string
	Env       []string // containerd's environment

	opts Options

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	stopped bool
}

type versionInfo struct {
	binDir        func() string
	configVersion int
	disabled      []string
}

// disabled1x: the plugins a containerd 1.x test daemon does without (CRI, NRI, and the
// snapshotters that need what the test machines lack).
var disabled1x = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.nri.v1.nri",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
}

var versions = map[string]versionInfo{
	"1.6": {
		binDir:        func() string { return "/usr/bin" }, // Debian's containerd 1.6 (apt)
		configVersion: 2,
		disabled:      disabled1x,
	},
	"1.7": {
		binDir:        func() string { return filepath.Join(Cache(), "containerd-v1.7.35", "bin") },
		configVersion: 2,
		disabled:      disabled1x,
	},
	// Version 3 is accepted by every 2.x; 2.4's native version is 4 (it migrates 3 at load,
	// logging "Configuration migrated from version 3").
	"2.4": {
		binDir:        func() string { return filepath.Join(Cache(), "containerd-v2.4.2", "bin") },
		configVersion: 3,
		disabled: []string{
			"io.containerd.grpc.v1.cri",
			"io.containerd.cri.v1.images",
			"io.containerd.cri.v1.runtime",
			"io.containerd.podsandbox.controller.v1.podsandbox",
			"io.containerd.nri.v1.nri",
			"io.containerd.snapshotter.v1.btrfs",
			"io.containerd.snapshotter.v1.devmapper",
			"io.containerd.snapshotter.v1.zfs",
		},
	},
}

// Versions lists the containerd versions Containerd accepts.
func Versions() []string { return []string{"1.6", "1.7", "2.4"} }

// BinDir returns the directory with containerd, ctr and containerd-shim-runc-v2 of a version.
func BinDir(version string) (string, error) {
	v, ok := versions[version]
	if !ok {
		return "", fmt.Errorf("unknown containerd version %q (want one of %v)", version, Versions())
	}
	return v.binDir(), nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// configTOML is the daemon's config file.
func (d *Daemon) configTOML() string {
	v := versions[d.Version]
	var b strings.Builder
	fmt.Fprintf(&b, "# private containerd %s for an isoguard integration test\n", d.Version)
	fmt.Fprintf(&b, "version = %d\n", v.configVersion)
	fmt.Fprintf(&b, "root = %s\n", tomlString(d.Root))
	fmt.Fprintf(&b, "state = %s\n", tomlString(d.State))
	fmt.Fprintf(&b, "temp = %s\n", tomlString(filepath.Join(d.Dir, "tmp")))
	quoted := make([]string, len(v.disabled))
	for i, p := range v.disabled {
		quoted[i] = tomlString(p)
	}
	fmt.Fprintf(&b, "disabled_plugins = [%s]\n", strings.Join(quoted, ", "))
	fmt.Fprintf(&b, "\n[grpc]\n  address = %s\n", tomlString(d.Address))
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %s\n", tomlString(d.TTRPCAddress))
	fmt.Fprintf(&b, "\n[debug]\n  level = \"debug\"\n")
	// The opt plugin prepends <path>/bin to containerd's PATH: keep it private (default /opt/containerd).
	fmt.Fprintf(&b, "\n[plugins]\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = %s\n", tomlString(filepath.Join(d.Dir, "opt")))
	if d.opts.ExtraConfig != "" {
		b.WriteString("\n" + d.opts.ExtraConfig + "\n")
	}
	return b.String()
}

// CtrCmd returns an unstarted ctr command of this daemon's version talking to it
// (ctr -a ADDRESS ARGS..., CONTAINERD_NAMESPACE=d.Namespace unless args pass -n).
func (d *Daemon) CtrCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(d.BinDir, "ctr"), append([]string{"-a", d.Address}, args...)...)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONTAINERD_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "CONTAINERD_NAMESPACE="+d.Namespace)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// CtrTimeout bounds every Ctr call.
var CtrTimeout = 2 * time.Minute

// Ctr runs this version's ctr against the daemon and returns its stdout, stderr and error
// (an *exec.ExitError for a non-zero exit). It logs the command line and its duration.
func (d *Daemon) Ctr(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CtrTimeout)
	defer cancel()
	cmd := d.CtrCmd(ctx, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err = cmd.Run()
	el := time.Since(start)
	if err != nil {
		msg := fmt.Sprintf("ctr %s: %v (%v)", strings.Join(args, " "), err, el.Round(time.Millisecond))
		if e := strings.TrimSpace(se.String()); e != "" {
			msg += "\nstderr: " + e
		}
		t.Logf("%s", msg)
	} else {
		t.Logf("ctr %s (%v)", strings.Join(args, " "), el.Round(time.Millisecond))
	}
	return so.String(), se.String(), err
}

// MustCtr is Ctr that fails the test on error; it returns stdout.
func (d *Daemon) MustCtr(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := d.Ctr(t, args...)
	if err != nil {
		t.Fatalf("ctr %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// AssertNoShims is the leak check for this daemon: it waits up to within until no process
// mentions its socket address or state directory (shims, runc, delegates) and fails the
// test otherwise. containerd itself mentions neither.
func (d *Daemon) AssertNoShims(t testing.TB, within time.Duration) bool {
	t.Helper()
	return AssertNoProcesses(t, within, d.Address, d.State)
}

// Logs returns containerd's log so far.
func (d *Daemon) Logs() string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// ImportImage imports the test image (ImageTar) into the given namespaces of d
// (default: d.Namespace) and checks that ImageRef is listed afterwards.
func ImportImage(t testing.TB, d *Daemon, namespaces ...string) {
	t.Helper()
	tarPath := ImageTar(t)
	if len(namespaces) == 0 {
		namespaces = []string{d.Namespace}
	}
	for _, ns := range namespaces {
		d.MustCtr(t, "-n", ns, "images", "import", tarPath)
		out := d.MustCtr(t, "-n", ns, "images", "ls", "-q")
		if !containsLine(out, ImageRef) {
			t.Fatalf("after import into namespace %s, %s is not listed:\n%s", ns, ImageRef, out)
		}
	}
}

func containsLine(s, line string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// serverVersion extracts the server's "Version:" from `ctr version`.
func serverVersion(out string) string {
	_, server, ok := strings.Cut(out, "Server:")
	if !ok {
		return ""
	}
	for _, l := range strings.Split(server, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= n {
		return strings.Join(lines, "\n")
	}
	return fmt.Sprintf("[... %d lines omitted ...]\n%s", len(lines)-n, strings.Join(lines[len(lines)-n:], "\n"))
}
