//go:build integration && linux

package cri

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isoguard/isoguard/integration/harness"
)

// forEachVersion runs f as a subtest for each containerd version of the CRI tier (2.4,
// then 1.7; 1.7 is skipped with ISOGUARD_SKIP_CTRD17=1).
func forEachVersion(t *testing.T, f func(t *testing.T, version string)) {
	for _, v := range harness.CRIVersions() {
		t.Run(v, func(t *testing.T) { f(t, v) })
	}
}

// appScript is the main container's process: it logs to stdout and stderr, then waits,
// exiting 0 on SIGTERM (a shell as PID 1 has no default SIGTERM action).
const appScript = `trap 'echo app-term; exit 0' TERM; echo app-started; echo app-stderr >&2; while true; do sleep 1; done`

func int64p(v int64) *int64 { return &v }

// startTwoContainerPod runs a pod on the daemon's default handler with two containers: app
// (busybox, as the image's user tenant, 128 MiB memory limit) and web (the nginx stand-in
// on :80). It waits until both are running and app has logged.
func startTwoContainerPod(t *testing.T, c *harness.CRIDaemon) (pod *harness.Pod, app, web *harness.Container) {
	t.Helper()
	start := time.Now()
	pod = c.RunPod(t, harness.PodConfig{Name: "two", Namespace: "isoguard-cri", Hostname: "isoguard-cri"})
	t.Logf("runp took %v", time.Since(start).Round(time.Millisecond))
	app = pod.RunContainer(t, harness.ContainerConfig{
		Name:      "app",
		Command:   []string{"sh", "-c", appScript},
		RunAsUser: int64p(harness.ImageTenantUID),
		Env:       map[string]string{"ISOGUARD_CRI": "app"},
		Resources: map[string]any{"memory_limit_in_bytes": 128 << 20, "cpu_period": 100000, "cpu_quota": 100000},
	})
	web = pod.RunContainer(t, harness.ContainerConfig{Name: "web", Image: harness.CRINginxImage})
	t.Logf("pod with two running containers after %v", time.Since(start).Round(time.Millisecond))
	for _, ctr := range []*harness.Container{app, web} {
		if st := ctr.State(t); st != "CONTAINER_RUNNING" {
			t.Fatalf("container %s: state %s, want CONTAINER_RUNNING", ctr.ID, st)
		}
	}
	waitFor(t, 10*time.Second, "app's first log line", func() bool {
		out, _ := app.Logs(t)
		return strings.Contains(out, "app-started")
	})
	return pod, app, web
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustExec(t *testing.T, ctr *harness.Container, sync bool, cmd ...string) string {
	t.Helper()
	run := ctr.Exec
	if sync {
		run = ctr.ExecSync
	}
	out, errOut, err := run(t, cmd...)
	if err != nil {
		t.Fatalf("exec %v in %s: %v\nstdout: %s\nstderr: %s", cmd, ctr.ID, err, out, errOut)
	}
	return out
}

func exitCode(err error) int {
	var ee *harness.ExecExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// hostCgroupFile reads a file of the cgroup of pid in the v1 hierarchy of controller (or
// the unified one), from the host.
func hostCgroupFile(t *testing.T, pid int, controller, file string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, parts[2], file))
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(string(v))
			}
		}
	}
	t.Fatalf("pid %d: no %s cgroup in %s", pid, controller, b)
	return ""
}

func inspectPid(t *testing.T, ctr *harness.Container) int {
	t.Helper()
	info, _ := ctr.Inspect(t)["info"].(map[string]any)
	pid, _ := info["pid"].(float64)
	if pid <= 0 {
		t.Fatalf("crictl inspect %s: no pid in info", ctr.ID)
	}
	return int(pid)
}

// TestCRIPodLifecycle: a pod with two containers through the plain runc handler; exec
// (streaming and sync, exit status, user), logs, stats, an in-place resource update, then
// stop and removal of everything, with nothing left.
func TestCRIPodLifecycle(t *testing.T) { forEachVersion(t, testCRIPodLifecycle) }

func testCRIPodLifecycle(t *testing.T, version string) {
	c := harness.CRIContainerd(t, version, harness.CRIOptions{})
	pod, app, web := startTwoContainerPod(t, c)

	// The pod: ready, on the private CNI network, both containers listed in it.
	pst, _ := pod.Inspect(t)["status"].(map[string]any)
	if pst["state"] != "SANDBOX_READY" {
		t.Errorf("pod state %v, want SANDBOX_READY", pst["state"])
	}
	netw, _ := pst["network"].(map[string]any)
	ip := net.ParseIP(fmt.Sprint(netw["ip"]))
	_, subnet, _ := net.ParseCIDR(c.Subnet)
	if ip == nil || !subnet.Contains(ip) {
		t.Errorf("pod IP %v not in the CNI subnet %s", netw["ip"], c.Subnet)
	}
	ids := strings.Fields(c.MustCrictl(t, "ps", "-q", "--pod", pod.ID))
	if len(ids) != 2 {
		t.Errorf("crictl ps --pod: %v, want the two containers", ids)
	}

	// exec: output, user, environment, hostname, exit status, streaming and ExecSync.
	if got := strings.TrimSpace(mustExec(t, app, false, "id", "-u")); got != strconv.Itoa(harness.ImageTenantUID) {
		t.Errorf("exec id -u in app: %q, want %d (RunAsUser)", got, harness.ImageTenantUID)
	}
	if got := strings.TrimSpace(mustExec(t, app, true, "whoami")); got != "tenant" {
		t.Errorf("exec --sync whoami in app: %q, want tenant", got)
	}
	if got := strings.TrimSpace(mustExec(t, app, true, "sh", "-c", "echo $ISOGUARD_CRI")); got != "app" {
		t.Errorf("exec: env ISOGUARD_CRI = %q, want app", got)
	}
	if got := strings.TrimSpace(mustExec(t, web, true, "hostname")); got != "isoguard-cri" {
		t.Errorf("exec hostname in web: %q, want isoguard-cri", got)
	}
	for _, sync := range []bool{false, true} {
		run := app.Exec
		if sync {
			run = app.ExecSync
		}
		if _, _, err := run(t, "sh", "-c", "exit 3"); exitCode(err) != 3 {
			t.Errorf("exec (sync=%v) `exit 3`: %v, want exit status 3", sync, err)
		}
	}
	// The two containers share the pod's network namespace: app reaches web on localhost,
	// and the host reaches web on the pod IP.
	page := mustExec(t, app, true, "wget", "-q", "-O", "-", "http://127.0.0.1:80/")
	if !strings.Contains(page, "isoguard CRI stand-in web server") {
		t.Errorf("app -> web on localhost:80: %q", page)
	}
	// web's pid file is the pid of its process in the container's pid namespace (1).
	if got := strings.TrimSpace(mustExec(t, web, true, "cat", "/var/run/nginx.pid")); got != "1" {
		t.Errorf("web's pid file: %q, want 1", got)
	}

	// logs: stdout and stderr apart, and the CRI log file in the pod's log directory.
	out, errOut := app.Logs(t)
	if !strings.Contains(out, "app-started") || strings.Contains(out, "app-stderr") {
		t.Errorf("crictl logs app, stdout: %q", out)
	}
	if !strings.Contains(errOut, "app-stderr") {
		t.Errorf("crictl logs app, stderr: %q", errOut)
	}
	b, err := os.ReadFile(filepath.Join(pod.LogDir, "app.log"))
	if err != nil || !strings.Contains(string(b), " stdout F app-started") || !strings.Contains(string(b), " stderr F app-stderr") {
		t.Errorf("CRI log file app.log: %q, %v", b, err)
	}
	if out, _ := web.Logs(t); !strings.Contains(out, "nginx: serving /www on :80") {
		t.Errorf("crictl logs web: %q", out)
	}

	// stats: the runc shim reports cgroup metrics of the container.
	st := app.Stats(t)
	if st.MemoryWorkingSetBytes == 0 || st.CPUUsageCoreNanoSeconds == 0 {
		t.Errorf("crictl stats app: memory working set %d, cpu %d: want both > 0 (%v)", st.MemoryWorkingSetBytes, st.CPUUsageCoreNanoSeconds, st.Raw)
	}

	// update: in-place resize of the running container, seen in its cgroup.
	pid := inspectPid(t, app)
	if got := hostCgroupFile(t, pid, "memory", "memory.limit_in_bytes"); got != strconv.Itoa(128<<20) {
		t.Errorf("app memory limit before update: %s, want %d", got, 128<<20)
	}
	app.Update(t, "--memory", strconv.Itoa(64<<20), "--cpu-period", "100000", "--cpu-quota", "50000")
	if got := hostCgroupFile(t, pid, "memory", "memory.limit_in_bytes"); got != strconv.Itoa(64<<20) {
		t.Errorf("app memory limit after update: %s, want %d", got, 64<<20)
	}
	if got := hostCgroupFile(t, pid, "cpu", "cpu.cfs_quota_us"); got != "50000" {
		t.Errorf("app cpu quota after update: %s, want 50000", got)
	}
	if got := strings.TrimSpace(mustExec(t, app, true, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")); got != strconv.Itoa(64<<20) {
		t.Errorf("memory limit seen inside app after update: %s, want %d", got, 64<<20)
	}
	if p := inspectPid(t, app); p != pid || app.State(t) != "CONTAINER_RUNNING" {
		t.Errorf("after update: pid %d -> %d, state %s: want the same running process", pid, p, app.State(t))
	}
	info, _ := app.Inspect(t)["info"].(map[string]any)
	spec, _ := info["runtimeSpec"].(map[string]any)
	linux, _ := spec["linux"].(map[string]any)
	res, _ := linux["resources"].(map[string]any)
	mem, _ := res["memory"].(map[string]any)
	if lim, _ := mem["limit"].(float64); int64(lim) != 64<<20 {
		t.Errorf("crictl inspect: runtimeSpec memory limit %v, want %d", mem["limit"], 64<<20)
	}

	// One shim serves the pod (its containers join the sandbox's shim): containerd connected
	// to one socket, which is there.
	socks := c.ShimSockets()
	if len(socks) != 1 {
		t.Errorf("shim sockets in containerd's log: %v, want one for the pod", socks)
	}
	for _, s := range socks {
		if _, err := os.Stat(s); err != nil {
			t.Errorf("shim socket of the running pod: %v", err)
		}
	}
	// The leak check sees a running pod: every kind of trace it looks for is there now.
	left := strings.Join(c.Leftovers(), "\n")
	for _, kind := range []string{"process ", "mount ", "network namespace ", "shim socket ", "runc state ", "bundle ", "cgroup ", "IP allocation ", "CNI result cache "} {
		if !strings.Contains(left, kind) {
			t.Errorf("Leftovers() with a running pod lists no %q:\n%s", kind, left)
		}
	}

	// stop and remove: app exits 0 on SIGTERM within the grace period.
	app.Stop(t, 10*time.Second)
	ast, _ := app.Inspect(t)["status"].(map[string]any)
	if ast["state"] != "CONTAINER_EXITED" || fmt.Sprint(ast["exitCode"]) != "0" {
		t.Errorf("app after stop: state %v exit code %v, want CONTAINER_EXITED 0", ast["state"], ast["exitCode"])
	}
	if out, _ := app.Logs(t); !strings.Contains(out, "app-term") {
		t.Errorf("app did not log its SIGTERM: %q", out)
	}
	app.Remove(t, false)
	pod.Stop(t)
	if st := web.State(t); st != "CONTAINER_EXITED" {
		t.Errorf("web after stopp: %s, want CONTAINER_EXITED", st)
	}
	pod.Remove(t, false)
	assertEmpty(t, c)
}

// assertEmpty: the CRI lists nothing and nothing of the pods is left on the machine.
func assertEmpty(t *testing.T, c *harness.CRIDaemon) {
	t.Helper()
	if out := strings.TrimSpace(c.MustCrictl(t, "pods", "-q")); out != "" {
		t.Errorf("crictl pods after removal: %q", out)
	}
	if out := strings.TrimSpace(c.MustCrictl(t, "ps", "-a", "-q")); out != "" {
		t.Errorf("crictl ps -a after removal: %q", out)
	}
	c.AssertNoLeftovers(t, 15*time.Second)
}

// TestCRIRestart: containerd restarts under a running pod; afterwards exec, logs, stop and
// removal work, and nothing is left.
func TestCRIRestart(t *testing.T) { forEachVersion(t, testCRIRestart) }

func testCRIRestart(t *testing.T, version string) {
	c := harness.CRIContainerd(t, version, harness.CRIOptions{})
	pod, app, web := startTwoContainerPod(t, c)
	appPid, webPid := inspectPid(t, app), inspectPid(t, web)

	pid := c.Pid()
	start := time.Now()
	c.Restart(t)
	t.Logf("containerd restart (CRI ready) took %v", time.Since(start).Round(time.Millisecond))
	if c.Pid() == pid {
		t.Fatal("containerd was not restarted")
	}

	// The pod and its containers survived, with the same processes.
	pst, _ := pod.Inspect(t)["status"].(map[string]any)
	if pst["state"] != "SANDBOX_READY" {
		t.Errorf("pod after restart: %v, want SANDBOX_READY", pst["state"])
	}
	for ctr, want := range map[*harness.Container]int{app: appPid, web: webPid} {
		if st := ctr.State(t); st != "CONTAINER_RUNNING" {
			t.Errorf("container %s after restart: %s", ctr.ID, st)
		}
		if got := inspectPid(t, ctr); got != want {
			t.Errorf("container %s: pid %d after restart, %d before", ctr.ID, got, want)
		}
	}
	if got := strings.TrimSpace(mustExec(t, app, false, "echo", "exec-after-restart")); got != "exec-after-restart" {
		t.Errorf("exec after restart: %q", got)
	}
	if got := strings.TrimSpace(mustExec(t, web, true, "cat", "/etc/hostname")); got != "isoguard-cri" {
		t.Errorf("exec --sync after restart: %q", got)
	}
	// A new container in the running pod after the restart (joins the pod's shim).
	late := pod.RunContainer(t, harness.ContainerConfig{Name: "late", Command: []string{"sh", "-c", "echo late-started; exec sleep 3600"}})
	waitFor(t, 10*time.Second, "late's log", func() bool { out, _ := late.Logs(t); return strings.Contains(out, "late-started") })
	st := app.Stats(t)
	if st.MemoryWorkingSetBytes == 0 {
		t.Errorf("stats after restart: %v", st.Raw)
	}

	app.Stop(t, 10*time.Second)
	ast, _ := app.Inspect(t)["status"].(map[string]any)
	if ast["state"] != "CONTAINER_EXITED" || fmt.Sprint(ast["exitCode"]) != "0" {
		t.Errorf("app stopped after restart: state %v exit code %v, want CONTAINER_EXITED 0", ast["state"], ast["exitCode"])
	}
	app.Remove(t, false)
	pod.Stop(t)
	for _, ctr := range []*harness.Container{web, late} {
		if st := ctr.State(t); st != "CONTAINER_EXITED" {
			t.Errorf("%s after stopp: %s", ctr.ID, st)
		}
	}
	pod.Remove(t, false)
	assertEmpty(t, c)
}
