// Package harness runs the project's integration tests against real containerd daemons.
//
// It builds a tiny OCI test image in pure Go (ImageTar), starts private containerd
// 1.6 / 1.7 / 2.4 instances (Containerd, Linux only), drives them with that version's
// ctr (Daemon.Ctr), builds binaries of this module (BuildBinary) and checks for leaked
// processes (ProcessesMatching, AssertNoProcesses).
//
// The binaries come from scripts/deps.sh linux, cached under Cache().
// Set ISOGUARD_KEEP_TMP=1 to keep a daemon's private directory (config, log, state) after a test.
package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// ModulePath is the module whose packages BuildBinary builds.
const ModulePath = "github.com/isoguard/isoguard"

// Cache returns the directory holding downloaded and built dependencies:
// $ISOGUARD_CACHE, or ~/.cache/isoguard (the same default as scripts/deps.sh).
func Cache() string {
	if c := os.Getenv("ISOGUARD_CACHE"); c != "" {
		return c
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "isoguard")
}

var moduleRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module "+ModulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", ModulePath)
		}
		dir = parent
	}
})

// ModuleRoot returns the root directory of this module (found from the working directory up).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func goTool() string {
	name := "go"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	if p := filepath.Join(runtime.GOROOT(), "bin", name); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// goBuild builds pkg (a "./..." path relative to the module root, or an import path)
// into out with the extra environment env.
func goBuild(pkg, out string, env []string, flags ...string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := append([]string{"build", "-buildvcs=false", "-o", out}, flags...)
	cmd := exec.Command(goTool(), append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// processTempDir is one temporary directory per test process for built binaries. It is not
// removed at exit (the binaries may run until the end); sweepStaleTemp removes those of
// processes that are gone.
var processTempDir = sync.OnceValues(func() (string, error) {
	sweepStaleTemp()
	return os.MkdirTemp("", fmt.Sprintf("isoguard-bin-%d-", os.Getpid()))
})

func sweepStaleTemp() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "isoguard-bin-*-*"))
	for _, m := range matches {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(m), "isoguard-bin-%d-", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if !processAlive(pid) {
			os.RemoveAll(m)
		}
	}
}

type buildResult struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // package and tags -> *buildResult

// BuildBinary builds a main package of this module ("./cmd/containerd-shim-isoguard-v1")
// for the host platform, once per test process, and returns the binary's path. The file
// is named after the package's last element, so containerd finds a shim under its name.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	return BuildBinaryTags(t, pkg, "")
}

// BuildBinaryTags is BuildBinary with build tags (go build -tags TAGS), e.g. a test-only
// knob; each set of tags is its own binary, in its own directory.
func BuildBinaryTags(t testing.TB, pkg, tags string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg+"\x00"+tags, &buildResult{})
	r := v.(*buildResult)
	r.once.Do(func() {
		dir, err := processTempDir()
		if err == nil {
			dir, err = os.MkdirTemp(dir, "b")
		}
		if err != nil {
			r.err = err
			return
		}
		name := filepath.Base(strings.TrimSuffix(pkg, "/"))
		if runtime.GOOS == "windows" {
			name += ".exe"
		}
		out := filepath.Join(dir, name)
		// Built like a release (Makefile `build`): static, stripped, so measurements and
		// tests see the binary operators run.
		flags := []string{"-trimpath", "-ldflags=-s -w"}
		if tags != "" {
			flags = append(flags, "-tags="+tags)
		}
		if r.err = goBuild(pkg, out, []string{"CGO_ENABLED=0"}, flags...); r.err == nil {
			r.path = out
		}
	})
	if r.err != nil {
		t.Fatalf("BuildBinary(%s): %v", pkg, r.err)
	}
	return r.path
}

// Process is a running process (Linux: as seen in /proc).
type Process struct {
	PID     int
	PPID    int
	Cmdline string // argv joined with spaces
}

func (p Process) String() string {
	return fmt.Sprintf("pid %d (ppid %d): %s", p.PID, p.PPID, p.Cmdline)
}

// SocketsUnder returns the unix sockets found under dir (recursively).
func SocketsUnder(dir string) []string {
	var socks []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type()&fs.ModeSocket != 0 {
			socks = append(socks, path)
		}
		return nil
	})
	return socks
}
