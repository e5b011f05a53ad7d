//go:build windows

package windows_test

// The harness: paths, bundles, running shim binaries like containerd does, ttrpc clients,
// and the processes a test started (tracked, checked and ended in t.Cleanup).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/Microsoft/go-winio"
	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/windows"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	ibundle "github.com/isoguard/isoguard/internal/bundle"
)

const (
	wrapperExe    = "containerd-shim-isoguard-v1.exe"
	runhcsExe     = "containerd-shim-runhcs-v1.exe"
	containerdExe = "containerd.exe"

	// fakeContainerd is containerd's gRPC address as the shims are told it; nothing listens.
	fakeContainerd = `\\.\pipe\fake-containerd`

	// runhcsOptionsURL is the type URL containerd gives runhcs Options (typeurl: the proto
	// full name), on start's stdin and in CreateTaskRequest.Options.
	runhcsOptionsURL = "containerd.runhcs.v1.Options"

	shimDiagService = "containerd.runhcs.v1.diag.ShimDiag"

	// shimTimeout bounds one run of a shim binary (start, delete): ~0.1-1.5 s under wine
	// (the wrapper's start includes runhcs's start, ~0.4 s).
	shimTimeout = 30 * time.Second
	// goneTimeout bounds how long a process may take to exit after it was told to.
	goneTimeout = 20 * time.Second
)

// env is where the script put the binaries and the scratch space, as Windows paths.
type env struct {
	binDir     string // wrapper, runhcs and a placeholder containerd.exe side by side
	wrapper    string
	runhcs     string
	containerd string // -publish-binary: the wrapper finds runhcs in its folder
	tmp        string
}

var (
	envOnce sync.Once
	theEnv  *env
	envErr  error
)

// getEnv reads ISOGUARD_WINTEST_BIN and ISOGUARD_WINTEST_TMP (Linux or Windows paths) once.
func getEnv(t *testing.T) *env {
	t.Helper()
	envOnce.Do(func() {
		bin := os.Getenv("ISOGUARD_WINTEST_BIN")
		if bin == "" {
			return
		}
		e := &env{binDir: winPath(bin)}
		e.wrapper = filepath.Join(e.binDir, wrapperExe)
		e.runhcs = filepath.Join(e.binDir, runhcsExe)
		e.containerd = filepath.Join(e.binDir, containerdExe)
		for _, p := range []string{e.wrapper, e.runhcs, e.containerd} {
			if _, err := os.Stat(p); err != nil {
				envErr = fmt.Errorf("ISOGUARD_WINTEST_BIN=%s: %w", bin, err)
				return
			}
		}
		if tmp := os.Getenv("ISOGUARD_WINTEST_TMP"); tmp != "" {
			e.tmp = winPath(tmp)
		} else {
			e.tmp = os.TempDir()
		}
		theEnv = e
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	if theEnv == nil {
		t.Skip("ISOGUARD_WINTEST_BIN is not set: run these tests with scripts/test-windows.sh")
	}
	return theEnv
}

// winPath turns a Linux absolute path into the Windows path wine maps it to (Z: is /);
// anything else is returned as is.
func winPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return `Z:` + strings.ReplaceAll(p, "/", `\`)
	}
	return p
}

// ---------------------------------------------------------------------------------------
// Per-test harness

// h is one test's world: a fresh namespace directory (containerd's
// <state>/io.containerd.runtime.v2.task/<ns>) under a fresh directory, a namespace name no
// other test uses (wine does not refuse duplicate pipe names, so a stale pipe of another
// test must never share a name), and the processes the test started.
type h struct {
	t     *testing.T
	env   *env
	dir   string // this test's directory
	ns    string
	nsDir string
	// extraEnv is added to every shim process (ISOGUARD_CONFIG, ISOGUARD_AUDIT_LOG).
	extraEnv []string
	policy   string // the node policy file ISOGUARD_CONFIG names
	audit    string // the audit file ISOGUARD_AUDIT_LOG names

	mu     sync.Mutex
	procs  []trackedProc
	before map[uint32]string // shim processes alive before the test
}

type trackedProc struct {
	pid  uint32
	what string // e.g. "wrapper sb1", "runhcs sb1"
}

// newH sets up a test. Tests must not run in parallel: cleanup's sweep compares all the
// wrapper and runhcs processes of the (wine) machine before and after the test.
func newH(t *testing.T) *h {
	t.Helper()
	e := getEnv(t)
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	suffix := randHex(t, 3)
	dir := filepath.Join(e.tmp, name+"-"+suffix)
	x := &h{t: t, env: e, dir: dir, ns: "wt" + suffix}
	x.nsDir = filepath.Join(dir, x.ns)
	if err := os.MkdirAll(x.nsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The node policy file: the minimal one (no delegate.path: runhcs is found beside
	// -publish-binary), so that no node-wide file of the wine prefix is ever read. The
	// wrapper denies everything without a valid policy file.
	x.policy = filepath.Join(dir, "policy.yaml")
	x.audit = filepath.Join(dir, "audit.jsonl")
	x.writePolicy("")
	x.extraEnv = []string{"ISOGUARD_CONFIG=" + x.policy, "ISOGUARD_AUDIT_LOG=" + x.audit}
	x.before = shimProcesses(t)
	t.Cleanup(x.cleanup)
	return x
}

// writePolicy writes the node policy file: kept minimal on purpose (apiVersion, kind and
// optionally delegate.path): the rules are the policy tests' business, these tests check
// the wrapper around the real runhcs. With no tenant named, every workload gets the
// untrusted profile: it rewrites config.json and start's options (Hyper-V, user,
// annotations); the Create and Exec requests of the tests already comply with it (Hyper-V
// options, ContainerUser), so those reach runhcs as sent.
func (x *h) writePolicy(delegatePath string) {
	x.t.Helper()
	doc := "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\n"
	if delegatePath != "" {
		doc += "delegate:\n  path: '" + strings.ReplaceAll(delegatePath, "'", "''") + "'\n"
	}
	if err := os.WriteFile(x.policy, []byte(doc), 0o644); err != nil {
		x.t.Fatal(err)
	}
}

// auditRecords reads the audit file (JSON lines).
func (x *h) auditRecords() []map[string]any {
	x.t.Helper()
	data, err := os.ReadFile(x.audit)
	if err != nil {
		x.t.Fatalf("audit file: %v", err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			x.t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// track records a process the test started; cleanup fails the test if it is still alive.
func (x *h) track(pid uint32, what string) {
	if pid == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range x.procs {
		if p.pid == pid {
			return
		}
	}
	x.procs = append(x.procs, trackedProc{pid, what})
}

// cleanup: every process the test started must be gone by now (the test ends them); any
// that is not is a failure, and is killed. Then the same for any wrapper or runhcs process
// that appeared during the test and was not tracked (a daemon the test never learnt of).
func (x *h) cleanup() {
	t := x.t
	x.mu.Lock()
	procs := append([]trackedProc(nil), x.procs...)
	x.mu.Unlock()
	leaked := false
	for _, p := range procs {
		if !waitGone(p.pid, 2*time.Second) {
			leaked = true
			t.Errorf("leak: %s (pid %d) is still running at the end of the test; killing it", p.what, p.pid)
			kill(p.pid)
		}
	}
	for pid, exe := range shimProcesses(t) {
		if _, ok := x.before[pid]; ok {
			continue
		}
		if !waitGone(pid, 2*time.Second) {
			leaked = true
			t.Errorf("leak: untracked %s (pid %d) started during the test is still running; killing it", exe, pid)
			kill(pid)
		}
	}
	if leaked || t.Failed() || os.Getenv("ISOGUARD_KEEP_TMP") != "" {
		t.Logf("test directory kept: %s", x.dir)
		return
	}
	removeTree(t, x.dir)
}

// removeTree removes dir. os.RemoveAll fails under wine 8.0 ("unlinkat ...: Invalid
// function": Go 1.26 removes through NtSetInformationFile classes wine lacks); plain
// os.Remove, deepest entries first, works on both.
func removeTree(t *testing.T, dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	var paths []string
	_ = filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil {
			paths = append(paths, p)
		}
		return nil
	})
	for i := len(paths) - 1; i >= 0; i-- {
		if err := os.Remove(paths[i]); err != nil {
			t.Logf("remove %s: %v", paths[i], err)
			return
		}
	}
}

// ---------------------------------------------------------------------------------------
// Bundles

// bundle writes <nsDir>/<id>/config.json: a Windows spec with empty layerFolders (runhcs
// fails Create at its layer precondition, wine has no HCS anyway) and the given CRI
// annotations. "annotations" is always present: runhcs v0.14.1 panics (nil map) on Create
// with options and no annotations.
func (x *h) bundle(id string, ann map[string]string) string {
	x.t.Helper()
	if ann == nil {
		ann = map[string]string{}
	}
	spec := map[string]any{
		"ociVersion":  "1.1.0",
		"process":     map[string]any{"args": []string{"cmd"}, "cwd": `C:\`},
		"windows":     map[string]any{"layerFolders": []string{}},
		"annotations": ann,
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		x.t.Fatal(err)
	}
	dir := filepath.Join(x.nsDir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		x.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		x.t.Fatal(err)
	}
	return dir
}

func sandboxAnn(sandboxID string) map[string]string {
	return map[string]string{"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": sandboxID}
}

func workloadAnn(sandboxID string) map[string]string {
	return map[string]string{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sandboxID}
}

// ---------------------------------------------------------------------------------------
// stdin formats

// optionsAny is runhcs Options as containerd sends them: a bare Any with typeurl's URL.
func optionsAny(t *testing.T, o *runhcsopts.Options) *anypb.Any {
	t.Helper()
	v, err := proto.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: runhcsOptionsURL, Value: v}
}

// stdinAny is start's stdin from containerd < 2.3 (and 2.3+ for *shim-runhcs-v1* names).
func stdinAny(t *testing.T, o *runhcsopts.Options) []byte {
	t.Helper()
	data, err := proto.Marshal(optionsAny(t, o))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// stdinBootstrap is start's stdin from containerd 2.3+ (core/runtime/v2/command.go).
func stdinBootstrap(t *testing.T, id, ns string, o *runhcsopts.Options) []byte {
	t.Helper()
	p := &bootapi.BootstrapParams{
		InstanceID:            id,
		Namespace:             ns,
		LogLevel:              bootapi.LogLevel_LOG_LEVEL_DEBUG,
		ContainerdVersion:     "v2.4.2",
		ContainerdGrpcAddress: fakeContainerd,
	}
	if err := p.AddExtension(optionsAny(t, o)); err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// ---------------------------------------------------------------------------------------
// Running shims like containerd

type run struct {
	stdout, stderr []byte
	code           int
	took           time.Duration
}

func (r run) String() string {
	return fmt.Sprintf("exit %d after %v, stdout %q, stderr %q", r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// shimArgs is containerd's argv for a shim (core/runtime/v2/command.go).
func (x *h) shimArgs(id, bundle, action string) []string {
	args := []string{"-namespace", x.ns, "-address", fakeContainerd, "-publish-binary", x.env.containerd, "-id", id}
	if bundle != "" {
		args = append(args, "-bundle", bundle)
	}
	return append(args, action)
}

// runShim runs exe with args in dir, stdin as given, stdout and stderr captured apart (the
// tests check stdout alone; containerd reads them combined, which they check by stderr
// being empty where it must be).
func (x *h) runShim(exe, dir string, stdin []byte, args ...string) run {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shimTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), x.extraEnv...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	r := run{stdout: out.Bytes(), stderr: errb.Bytes(), took: time.Since(t0)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		x.t.Fatalf("%s %s: %v (%s)", filepath.Base(exe), strings.Join(args, " "), err, r)
	}
	if ctx.Err() != nil {
		x.t.Fatalf("%s %s did not finish within %v (%s)", filepath.Base(exe), strings.Join(args, " "), shimTimeout, r)
	}
	return r
}

// startHung is set when a wrapper start did not finish: later tests fail at once instead
// of waiting shimTimeout each (the cause does not go away between tests).
var startHung struct {
	sync.Mutex
	test string
}

// startWrapper runs the wrapper's start for bundle (cwd) and tracks the processes it left
// behind (from the wrapper's record, when it wrote one).
func (x *h) startWrapper(id, bundle string, stdin []byte) run {
	x.t.Helper()
	startHung.Lock()
	hung := startHung.test
	startHung.Unlock()
	if hung != "" {
		x.t.Fatalf("not starting %s: a wrapper start already hung in %s (see there)", id, hung)
	}
	done := false
	defer func() {
		if !done {
			startHung.Lock()
			startHung.test = x.t.Name()
			startHung.Unlock()
			x.t.Logf("wrapper daemon log of %s:\n%s", id, tryRead(filepath.Join(bundle, ibundle.DaemonLog)))
		}
	}()
	r := x.runShim(x.env.wrapper, bundle, stdin, x.shimArgs(id, "", "start")...)
	done = true
	x.t.Logf("wrapper start %s: %s", id, r)
	if st, err := readRecord(bundle); err == nil && st.ID == id {
		x.track(uint32(st.Pid), "wrapper daemon "+id)
		x.track(uint32(st.Delegate.Pid), "runhcs serve "+id)
	}
	return r
}

// startRunhcs runs the real runhcs's start directly, as containerd would without isoguard.
func (x *h) startRunhcs(id, bundle string, stdin []byte) run {
	x.t.Helper()
	r := x.runShim(x.env.runhcs, bundle, stdin, x.shimArgs(id, "", "start")...)
	x.t.Logf("runhcs start %s: %s", id, r)
	if pid, err := readPidFile(bundle); err == nil {
		x.track(pid, "runhcs serve "+id+" (started directly)")
	}
	return r
}

func (x *h) wrapperPipe(id string) string {
	return `\\.\pipe\ProtectedPrefix\Administrators\isoguard-shim-` + x.ns + "-" + id + "-pipe"
}

func (x *h) runhcsPipe(id string) string {
	return `\\.\pipe\ProtectedPrefix\Administrators\containerd-shim-` + x.ns + "-" + id + "-pipe"
}

func readRecord(dir string) (*ibundle.Record, error) {
	deadline := time.Now().Add(35 * time.Second)
	for {
		r, err := ibundle.ReadRecord(dir)
		if err != nil {
			return nil, err
		}
		// A denied start has no delegate to wait for.
		if r.Delegate.Pid != 0 || r.Denied != "" || time.Now().After(deadline) {
			return r, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readPidFile(bundle string) (uint32, error) {
	data, err := os.ReadFile(filepath.Join(bundle, ibundle.PidFile))
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 32)
	return uint32(n), err
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// ---------------------------------------------------------------------------------------
// ttrpc

// conn is a ttrpc client on one named pipe.
type conn struct {
	addr   string
	client *ttrpc.Client
	task   taskv2.TTRPCTaskService
}

func (c *conn) Close() { c.client.Close() }

// dialTTRPC connects to a shim's pipe and proves the connection with a Connect call. The
// first handshake is retried under a deadline, each attempt with a short one of its own:
// under wine the FIRST client of a fresh go-winio pipe lands on go-winio's placeholder
// instance (which real Windows keeps disconnected), where nobody reads, so the request
// write blocks (docs/windows-wine.md). Real Windows succeeds on the first attempt.
func dialTTRPC(t *testing.T, addr string) (*conn, *taskv2.ConnectResponse) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var lastErr error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		timeout := 2 * time.Second
		nc, err := winio.DialPipe(addr, &timeout)
		if err != nil {
			lastErr = err
			time.Sleep(50 * time.Millisecond)
			continue
		}
		// ttrpc's Call honours its context only while it waits for the answer; the request
		// write itself blocks forever on wine's placeholder instance. A write deadline
		// bounds it; it is cleared once the handshake is answered.
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		c := ttrpc.NewClient(nc)
		task := taskv2.NewTTRPCTaskClient(c)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp, err := task.Connect(ctx, &taskv2.ConnectRequest{})
		cancel()
		if err == nil {
			err = nc.SetWriteDeadline(time.Time{})
		}
		if err != nil {
			lastErr = err
			c.Close()
			continue
		}
		if attempt > 0 {
			t.Logf("dial %s: connected on attempt %d (earlier: %v)", addr, attempt+1, lastErr)
		}
		return &conn{addr: addr, client: c, task: task}, resp
	}
	t.Fatalf("dial %s: no Connect answer within 30s: %v", addr, lastErr)
	return nil, nil
}

func rpcCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 20*time.Second)
}

// pipeAnswers reports whether anything still serves addr.
func pipeAnswers(addr string) (bool, error) {
	timeout := time.Second
	c, err := winio.DialPipe(addr, &timeout)
	if err != nil {
		return false, err
	}
	c.Close()
	return true, nil
}

// ---------------------------------------------------------------------------------------
// Processes (Windows API; all of it works under wine)

// alive reports whether pid is a running process.
func alive(pid uint32) bool {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE|windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return false
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, 0)
	return err == nil && ev == uint32(windows.WAIT_TIMEOUT)
}

// imageName is the executable's base name of a live pid ("" when gone).
func imageName(pid uint32) string {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return ""
	}
	defer windows.CloseHandle(h)
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &n); err != nil {
		return ""
	}
	return filepath.Base(windows.UTF16ToString(buf[:n]))
}

// waitGone waits until pid has exited (or never existed).
func waitGone(pid uint32, timeout time.Duration) bool {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, pid)
	if err != nil {
		return true
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, uint32(timeout.Milliseconds()))
	return err == nil && ev == windows.WAIT_OBJECT_0
}

func kill(pid uint32) {
	h, err := windows.OpenProcess(windows.PROCESS_TERMINATE|windows.SYNCHRONIZE, false, pid)
	if err != nil {
		return
	}
	defer windows.CloseHandle(h)
	_ = windows.TerminateProcess(h, 1)
	_, _ = windows.WaitForSingleObject(h, 5000)
}

// shimProcesses lists the live wrapper and runhcs processes (pid -> image name), from a
// toolhelp snapshot of every process of the (wine) machine.
func shimProcesses(t *testing.T) map[uint32]string {
	t.Helper()
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		t.Fatalf("CreateToolhelp32Snapshot: %v", err)
	}
	defer windows.CloseHandle(snap)
	out := map[uint32]string{}
	var pe windows.ProcessEntry32
	pe.Size = uint32(unsafe.Sizeof(pe))
	for err = windows.Process32First(snap, &pe); err == nil; err = windows.Process32Next(snap, &pe) {
		exe := windows.UTF16ToString(pe.ExeFile[:])
		if strings.EqualFold(exe, wrapperExe) || strings.EqualFold(exe, runhcsExe) {
			out[pe.ProcessID] = exe
		}
	}
	if !errors.Is(err, windows.ERROR_NO_MORE_FILES) {
		t.Fatalf("Process32Next: %v", err)
	}
	return out
}
