package harness

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ibundle "github.com/isoguard/isoguard/internal/bundle"
)

// StartTimeout bounds how long Containerd waits for "containerd successfully booted".
var StartTimeout = 60 * time.Second

// Containerd starts a private containerd of the given version ("1.6", "1.7", "2.4") with
// default Options. See ContainerdWith.
func Containerd(t testing.TB, version string) *Daemon {
	t.Helper()
	return ContainerdWith(t, version, Options{})
}

// ContainerdWith starts a private containerd of the given version: own root, state, temp
// and opt dirs, gRPC and ttrpc sockets and config file under a short directory in /tmp, CRI
// and NRI disabled, PATH = opts.PathPrepend + the version's bin dir + system dirs (so that
// version's containerd-shim-runc-v2 is found first) and the working directory = that
// private directory. It waits until containerd has booted and checks the server version.
//
// Cleanup (registered on t) dumps the tail of containerd's log if t failed, stops containerd,
// SIGKILLs every process whose command line mentions the private directory (shims, runc),
// force-deletes leftover runc containers of the daemon's bundles, removes their shim sockets,
// unmounts whatever is mounted below the directory and removes it.
func ContainerdWith(t testing.TB, version string, opts Options) *Daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("real containerd tests need root")
	}
	binDir, err := BinDir(version)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if !fileExists(filepath.Join(binDir, b)) {
			if version == "1.7" && os.Getenv("ISOGUARD_SKIP_CTRD17") == "1" {
				t.Skipf("containerd 1.7 not installed (ISOGUARD_SKIP_CTRD17=1)")
			}
			t.Fatalf("containerd %s: %s missing: run `bash scripts/deps.sh linux` (cache %s)", version, filepath.Join(binDir, b), Cache())
		}
	}
	if _, err := exec.LookPath("runc"); err != nil && !fileExists("/usr/sbin/runc") {
		t.Fatalf("runc not installed: run `bash scripts/deps.sh linux`")
	}
	sweepOnce.Do(func() {
		for _, msg := range sweepStaleDaemons() {
			t.Logf("stale daemon sweep: %s", msg)
		}
	})

	dir, err := os.MkdirTemp("/tmp", "ig-")
	if err != nil {
		t.Fatal(err)
	}
	if err := writeOwner(dir); err != nil {
		t.Fatal(err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	d := &Daemon{
		Version:      version,
		Dir:          dir,
		Address:      filepath.Join(dir, "c.sock"),
		TTRPCAddress: filepath.Join(dir, "c.sock.ttrpc"),
		BinDir:       binDir,
		Root:         filepath.Join(dir, "root"),
		State:        filepath.Join(dir, "state"),
		ConfigPath:   filepath.Join(dir, "config.toml"),
		LogPath:      filepath.Join(dir, "containerd.log"),
		Namespace:    "ig-" + hex.EncodeToString(rnd[:]),
		opts:         opts,
	}
	path := append(append([]string{}, opts.PathPrepend...), binDir,
		"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "CONTAINERD_") || strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			continue
		}
		d.Env = append(d.Env, kv)
	}
	d.Env = append(append(d.Env, "PATH="+strings.Join(path, ":")), opts.Env...)
	for _, sub := range []string{"tmp", "opt"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o711); err != nil {
			t.Fatal(err)
		}
	}
	config := d.configTOML()
	if opts.Config != nil {
		config = opts.Config(d)
	}
	if err := os.WriteFile(d.ConfigPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cleanup(t) })

	if err := d.start(); err != nil {
		t.Fatalf("containerd %s: %v\nlog:\n%s", version, err, tail(d.Logs(), 100))
	}
	out := d.MustCtr(t, "version")
	if got := serverVersion(out); !strings.HasPrefix(strings.TrimPrefix(got, "v"), version+".") {
		t.Fatalf("containerd at %s reports server version %q, want %s.x:\n%s", d.Address, got, version, out)
	}
	return d
}

const bootedMarker = "containerd successfully booted"

func (d *Daemon) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	st, err := logf.Stat()
	if err != nil {
		return err
	}
	offset := st.Size()
	fmt.Fprintf(logf, "=== harness: starting containerd %s (%s) at %s\n", d.Version, d.BinDir, time.Now().Format(time.RFC3339Nano))

	cmd := exec.Command(filepath.Join(d.BinDir, "containerd"), "--config", d.ConfigPath)
	cmd.Dir = d.Dir // containerd looks for ./containerd-shim-* in its working directory first
	cmd.Env = d.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	d.cmd, d.done, d.stopped = cmd, done, false

	deadline := time.Now().Add(StartTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("containerd exited during start: %v", cmd.ProcessState)
		default:
		}
		if booted(d.LogPath, offset) {
			if c, err := net.Dial("unix", d.Address); err == nil {
				c.Close()
				fmt.Fprintf(logf, "=== harness: containerd ready after %v\n", time.Since(begin).Round(time.Millisecond))
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not boot within %v", StartTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func booted(logPath string, offset int64) bool {
	f, err := os.Open(logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), bootedMarker) {
			return true
		}
	}
	return false
}

// StartupTime returns how long the last start took, from the log's harness markers
// (zero if unknown). Useful for reporting.
func (d *Daemon) StartupTime() time.Duration {
	var last time.Duration
	for _, l := range strings.Split(d.Logs(), "\n") {
		if s, ok := strings.CutPrefix(l, "=== harness: containerd ready after "); ok {
			if v, err := time.ParseDuration(strings.TrimSpace(s)); err == nil {
				last = v
			}
		}
	}
	return last
}

// Stop stops containerd (SIGTERM, SIGKILL after 15 s) and leaves its shims running.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if err := d.stop(); err != nil {
		t.Errorf("stop containerd %s: %v", d.Version, err)
	}
}

func (d *Daemon) stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.stopped {
		return nil
	}
	d.stopped = true
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(15 * time.Second):
	}
	d.cmd.Process.Kill()
	<-d.done
	return fmt.Errorf("containerd did not exit within 15s of SIGTERM; killed")
}

// Restart stops containerd, leaving the shims running, and starts it again with the same
// config (for containerd-restart tests).
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	d.Stop(t)
	d.Start(t)
}

// Start starts a stopped containerd again with the same config (Stop, then Start: a
// restart with something done while containerd is down).
func (d *Daemon) Start(t testing.TB) {
	t.Helper()
	if err := d.start(); err != nil {
		t.Fatalf("restart containerd %s: %v\nlog:\n%s", d.Version, err, tail(d.Logs(), 100))
	}
}

// Running reports whether the containerd process is alive.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Pid returns containerd's pid (0 when not started).
func (d *Daemon) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

func (d *Daemon) cleanup(t testing.TB) {
	if t.Failed() {
		t.Logf("containerd %s log (%s), tail:\n%s", d.Version, d.LogPath, tail(d.Logs(), 300))
	}
	if err := d.stop(); err != nil {
		t.Logf("cleanup: %v", err)
	}
	if os.Getenv("ISOGUARD_KEEP_TMP") == "1" {
		killMentioning(d.Dir + "/")
		os.Remove(filepath.Join("/run/containerd/runc", d.Namespace)) // only if empty
		t.Logf("ISOGUARD_KEEP_TMP=1: keeping %s (leftover containers and mounts included)", d.Dir)
		return
	}
	for _, msg := range cleanDir(d.Dir) {
		t.Logf("cleanup: %s", msg)
	}
}

// cleanDir tears down everything a daemon with private directory dir may have left:
// processes, runc containers, shim sockets, mounts, files. It returns what it had to do.
func cleanDir(dir string) []string {
	var msgs []string
	if pids := killMentioning(dir + "/"); len(pids) > 0 {
		msgs = append(msgs, fmt.Sprintf("killed leftover processes %v", pids))
	}
	// Bundles: STATE/io.containerd.runtime.v2.task/NS/ID (runc root /run/containerd/runc/NS).
	bundles, _ := filepath.Glob(filepath.Join(dir, "state", "io.containerd.runtime.v2.task", "*", "*"))
	for _, b := range bundles {
		id, ns := filepath.Base(b), filepath.Base(filepath.Dir(b))
		runcRoot := filepath.Join("/run/containerd/runc", ns)
		if fileExists(filepath.Join(runcRoot, id)) {
			out, err := exec.Command("runc", "--root", runcRoot, "delete", "--force", id).CombinedOutput()
			msgs = append(msgs, fmt.Sprintf("runc delete --force %s/%s: %v %s", ns, id, err, strings.TrimSpace(string(out))))
		}
		os.Remove(runcRoot) // only if empty
		for _, sock := range shimSockets(filepath.Join(dir, "c.sock"), ns, id, b) {
			if os.Remove(sock) == nil {
				msgs = append(msgs, "removed shim socket "+sock)
			}
		}
	}
	// runc roots of the daemon's namespaces, if empty now.
	nsDirs, _ := filepath.Glob(filepath.Join(dir, "state", "io.containerd.runtime.v2.task", "*"))
	for _, ns := range nsDirs {
		os.Remove(filepath.Join("/run/containerd/runc", filepath.Base(ns)))
	}
	if n := unmountUnder(dir); n > 0 {
		msgs = append(msgs, fmt.Sprintf("unmounted %d mounts", n))
	}
	if err := os.RemoveAll(dir); err != nil {
		msgs = append(msgs, fmt.Sprintf("remove %s: %v", dir, err))
	}
	return msgs
}

// shimSockets lists the sockets a killed shim of bundle ns/id may have left in
// /run/containerd/s: those named in the bundle (address; bootstrap.json in 2.x) and those
// the runc shim derives from containerd's address (sha256 of ADDRESS/NS/ID[/debug]).
func shimSockets(address, ns, id, bundle string) []string {
	var socks []string
	add := func(a string) {
		a = strings.TrimPrefix(strings.TrimSpace(a), "unix://")
		if strings.HasPrefix(a, ShimSocketDir+"/") && !slices.Contains(socks, a) {
			socks = append(socks, a)
		}
	}
	if b, err := os.ReadFile(filepath.Join(bundle, ibundle.AddressFile)); err == nil {
		add(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(bundle, ibundle.BootstrapFile)); err == nil {
		var bs struct {
			Address string `json:"address"`
		}
		if json.Unmarshal(b, &bs) == nil {
			add(bs.Address)
		}
	}
	for _, debug := range []bool{false, true} {
		add(runcShimSocket(address, ns, id, debug))
	}
	return socks
}

// killMentioning SIGKILLs every process (but this one) whose command line contains s.
func killMentioning(s string) []int {
	var pids []int
	for _, p := range ProcessesMatching(s) {
		if syscall.Kill(p.PID, syscall.SIGKILL) == nil {
			pids = append(pids, p.PID)
		}
	}
	// Give the kernel a moment to reap/unmap before unmounting.
	for i := 0; i < 100 && len(ProcessesMatching(s)) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return pids
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0
	}
	var mps []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	n := 0
	for _, mp := range mps {
		if syscall.Unmount(mp, syscall.MNT_DETACH) == nil {
			n++
		}
	}
	return n
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Owner files let a later test process clean up after one that died without cleanup
// (e.g. killed by go test -timeout): "PID STARTTIME".
func writeOwner(dir string) error {
	return os.WriteFile(filepath.Join(dir, "owner"), []byte(fmt.Sprintf("%d %s", os.Getpid(), procStartTime(os.Getpid()))), 0o644)
}

var sweepOnce sync.Once

func sweepStaleDaemons() (msgs []string) {
	owners, _ := filepath.Glob("/tmp/ig-*/owner")
	for _, o := range owners {
		b, err := os.ReadFile(o)
		if err != nil {
			continue
		}
		var pid int
		var start string
		if n, _ := fmt.Sscanf(string(b), "%d %s", &pid, &start); n != 2 {
			continue
		}
		if pid == os.Getpid() || (processAlive(pid) && procStartTime(pid) == start) {
			continue
		}
		dir := filepath.Dir(o)
		msgs = append(msgs, fmt.Sprintf("%s (owner pid %d gone)", dir, pid))
		for _, m := range cleanDir(dir) {
			msgs = append(msgs, dir+": "+m)
		}
	}
	return msgs
}

// procStartTime is field 22 of /proc/PID/stat (start time in clock ticks since boot).
func procStartTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}
