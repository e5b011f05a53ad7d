package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CRIDaemon is a private containerd with its CRI plugin (CRIContainerd): the Daemon plus
// a private CNI network, the CRI images imported into k8s.io, and crictl/critest bound to
// its socket.
type CRIDaemon struct {
	*Daemon
	Endpoint       string // unix://ADDRESS, for crictl and critest
	Handlers       []RuntimeHandler
	DefaultRuntime string
	RestrictOOM    bool   // restrict_oom_score_adj as configured
	CgroupParent   string // cgroup parent of the pods RunPod starts ("/ig-cri-XXXX")
	CNIConfDir     string
	CNINetwork     string // network name
	Bridge         string // the CNI bridge on the host (removed at cleanup)
	Subnet         string
	IPAMDir        string
	crictlConfig   string
	netnsBefore    map[string]bool
	runcRoots      []string // runc --root of the handlers: where runc keeps container state
	savedIDs       []string // IDs() at cleanup, for the final check (the log goes with the directory)
}

// CRIStartTimeout bounds how long CRIContainerd and Restart wait for the CRI plugin to
// report RuntimeReady and NetworkReady.
var CRIStartTimeout = 60 * time.Second

// CrictlTimeout bounds every Crictl call.
var CrictlTimeout = 2 * time.Minute

// HasCapSysResource reports whether this process has CAP_SYS_RESOURCE in its effective
// set (without it runc cannot lower oom_score_adj below containerd's own).
func HasCapSysResource() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<24) != 0 // CAP_SYS_RESOURCE = 24
		}
	}
	return false
}

// CRIContainerd starts a private containerd of version ("2.4" or "1.7") with its CRI plugin:
//
//   - root, state, sockets, config under a short /tmp/ig-* directory (ContainerdWith);
//   - runtime handlers opts.Handlers (default RuncHandler) and default_runtime_name;
//   - a private CNI network: bridge (own name, created with the gateway address by the
//     harness, ipMasq false) + host-local IPAM (own subnet, dataDir in the private
//     directory), plugins from CNIBinDir; no host sysctl is changed;
//   - network namespaces under STATE/netns (netns_mounts_under_state_dir);
//   - restrict_oom_score_adj when this process lacks CAP_SYS_RESOURCE;
//   - the sandbox image CRIPauseImage pinned (2.x pinned_images.sandbox, 1.7 sandbox_image)
//     and CRIImagesTar imported into the k8s.io namespace.
//
// It waits until `crictl info` reports RuntimeReady and NetworkReady. The cleanup registered
// on t removes the pods left (crictl rmp -af, as kubelet's garbage collection would),
// then asserts that nothing of any pod or container the daemon created is left: processes
// (pod processes by cgroup, shims by their command line), mounts under the private
// directory, shim sockets in /run/containerd/s, network namespaces, runc state, cgroups,
// CNI allocations; it then removes whatever was left, the bridge included.
func CRIContainerd(t testing.TB, version string, opts CRIOptions) *CRIDaemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("real containerd tests need root")
	}
	if _, ok := criVersions[version]; !ok {
		t.Fatalf("CRI tier: unsupported containerd version %q (want one of %v)", version, CRIVersions())
	}
	for _, p := range []string{CrictlPath(), filepath.Join(CNIBinDir, "bridge"), filepath.Join(CNIBinDir, "host-local"), filepath.Join(CNIBinDir, "loopback"), BusyboxPath} {
		if !fileExists(p) {
			t.Fatalf("CRI tier: %s missing: run `bash scripts/deps.sh cri` (cache %s)", p, Cache())
		}
	}
	c := &CRIDaemon{
		Handlers:       opts.Handlers,
		DefaultRuntime: opts.DefaultRuntime,
		RestrictOOM:    !HasCapSysResource(),
		netnsBefore:    dirNames("/var/run/netns"),
	}
	if len(c.Handlers) == 0 {
		c.Handlers = []RuntimeHandler{RuncHandler()}
	}
	if c.DefaultRuntime == "" {
		c.DefaultRuntime = c.Handlers[0].Name
	}
	if opts.RestrictOOMScoreAdj != nil {
		c.RestrictOOM = *opts.RestrictOOMScoreAdj
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])
	c.CNINetwork = "ig-cri-" + tag
	c.Bridge = "igb" + tag
	c.CgroupParent = "/ig-cri-" + tag
	subnet, err := freeSubnet(rnd[0], rnd[1])
	if err != nil {
		t.Fatal(err)
	}
	c.Subnet = subnet
	for _, h := range c.Handlers {
		root := "/run/containerd/runc/" + CRINamespace
		if r, ok := h.Options["Root"].(string); ok && r != "" {
			root = filepath.Join(r, CRINamespace)
		}
		c.runcRoots = append(c.runcRoots, root)
	}

	criSweepOnce.Do(func() { // before ContainerdWith's sweep removes the stale directories
		for _, msg := range sweepStaleCRI() {
			t.Logf("stale CRI daemon sweep: %s", msg)
		}
	})
	// Registered before the daemon's own cleanup, so it runs after it: the final check.
	t.Cleanup(func() { c.finalCheck(t) })

	base := opts.Options
	base.Config = func(d *Daemon) string {
		c.CNIConfDir = filepath.Join(d.Dir, "cni")
		c.IPAMDir = filepath.Join(d.Dir, "ipam")
		net := criNet{Name: c.CNINetwork, Bridge: c.Bridge, Subnet: c.Subnet, ConfDir: c.CNIConfDir, IPAMDir: c.IPAMDir}
		cfg, err := criConfigTOML(d, CRIOptions{Options: opts.Options, Handlers: c.Handlers, DefaultRuntime: c.DefaultRuntime, RuntimeConfig: opts.RuntimeConfig}, net, c.RestrictOOM)
		if err == nil {
			err = os.MkdirAll(c.CNIConfDir, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(c.CNIConfDir, "10-"+c.CNINetwork+".conflist"), []byte(net.conflist()), 0o644)
		}
		if err == nil {
			err = createBridge(net)
		}
		if err == nil {
			// A marker for the stale sweep: what this daemon creates outside its directory.
			err = os.WriteFile(filepath.Join(d.Dir, "cri"), []byte(fmt.Sprintf("%s %s %s\n", c.Bridge, c.CgroupParent, c.CNINetwork)), 0o644)
		}
		if err != nil {
			// The config hook cannot fail the test itself: containerd then refuses the file.
			return "# CRI tier: " + err.Error() + "\ninvalid = [\n"
		}
		return cfg
	}
	start := time.Now()
	c.Daemon = ContainerdWith(t, version, base)
	c.Endpoint = "unix://" + c.Address
	c.crictlConfig = filepath.Join(c.Dir, "crictl.yaml")
	if err := os.WriteFile(c.crictlConfig, []byte(fmt.Sprintf("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 60\npull-image-on-create: false\n", c.Endpoint, c.Endpoint)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cleanup(t) }) // runs before the daemon's cleanup (LIFO)

	if err := c.waitReady(t); err != nil {
		t.Fatalf("containerd %s CRI: %v\nlog:\n%s", version, err, tail(c.Logs(), 100))
	}
	c.importImages(t)
	t.Logf("containerd %s with CRI ready in %v (handlers %v, default %s, restrict_oom_score_adj=%v, CNI %s on %s %s)",
		version, time.Since(start).Round(time.Millisecond), handlerNames(c.Handlers), c.DefaultRuntime, c.RestrictOOM, c.CNINetwork, c.Bridge, c.Subnet)
	return c
}

func handlerNames(hs []RuntimeHandler) []string {
	var n []string
	for _, h := range hs {
		n = append(n, h.Name)
	}
	return n
}

// freeSubnet picks a 10.x.y.0/24 that no route of the host overlaps.
func freeSubnet(a, b byte) (string, error) {
	routes := hostRoutes()
	for i := 0; i < 256; i++ {
		x, y := 200+int(a+byte(i))%50, int(b+byte(i*7))
		_, cand, _ := net.ParseCIDR(fmt.Sprintf("10.%d.%d.0/24", x, y))
		free := true
		for _, r := range routes {
			if r.Contains(cand.IP) || cand.Contains(r.IP) {
				free = false
				break
			}
		}
		if free {
			return cand.String(), nil
		}
	}
	return "", errors.New("no free 10.x.y.0/24 subnet for the CNI network")
}

// hostRoutes are the destinations of the host's IPv4 routes but the default route.
func hostRoutes() []*net.IPNet {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil
	}
	var nets []*net.IPNet
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 {
			continue
		}
		// /proc/net/route prints little-endian words.
		ip := net.IPv4(byte(dst), byte(dst>>8), byte(dst>>16), byte(dst>>24))
		m := net.IPv4Mask(byte(mask), byte(mask>>8), byte(mask>>16), byte(mask>>24))
		nets = append(nets, &net.IPNet{IP: ip.Mask(m), Mask: m})
	}
	return nets
}

// createBridge creates the network's bridge, up, with the gateway address (the CNI bridge
// plugin then uses it as it is).
func createBridge(n criNet) error {
	for _, args := range [][]string{
		{"link", "add", n.Bridge, "type", "bridge"},
		{"addr", "add", n.gateway() + "/24", "dev", n.Bridge},
		{"link", "set", n.Bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			exec.Command("ip", "link", "delete", n.Bridge).Run()
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func dirNames(dir string) map[string]bool {
	names := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names
}

// criInfo is the part of `crictl info` waitReady reads.
type criInfo struct {
	Status struct {
		Conditions []struct {
			Type   string `json:"type"`
			Status bool   `json:"status"`
			Reason string `json:"reason"`
		} `json:"conditions"`
	} `json:"status"`
}

func (c *CRIDaemon) waitReady(t testing.TB) error {
	deadline := time.Now().Add(CRIStartTimeout)
	var last string
	for {
		out, errOut, err := c.crictl(context.Background(), 10*time.Second, "info")
		if err == nil {
			var info criInfo
			if jerr := json.Unmarshal([]byte(out), &info); jerr == nil {
				ready := map[string]bool{}
				for _, cond := range info.Status.Conditions {
					ready[cond.Type] = cond.Status
				}
				if ready["RuntimeReady"] && ready["NetworkReady"] {
					return nil
				}
				last = fmt.Sprintf("conditions %+v", info.Status.Conditions)
			} else {
				last = jerr.Error()
			}
		} else {
			last = fmt.Sprintf("%v: %s", err, strings.TrimSpace(errOut))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CRI not ready within %v: %s", CRIStartTimeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// importImages imports CRIImagesTar into k8s.io and waits until the CRI plugin lists them.
func (c *CRIDaemon) importImages(t testing.TB) {
	t.Helper()
	tarPath := CRIImagesTar(t)
	c.MustCtr(t, "-n", CRINamespace, "images", "import", tarPath)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, err := c.Crictl(t, "images", "-o", "json")
		var missing []string
		if err == nil {
			for _, img := range CRIImages() {
				if !strings.Contains(out, `"`+img+`"`) {
					missing = append(missing, img)
				}
			}
			if len(missing) == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("images imported into %s but the CRI plugin does not list %v:\n%s", CRINamespace, missing, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Restart restarts containerd (shims and pods keep running) and waits until the CRI
// plugin is ready again.
func (c *CRIDaemon) Restart(t testing.TB) {
	t.Helper()
	c.Daemon.Restart(t)
	if err := c.waitReady(t); err != nil {
		t.Fatalf("after restart: %v\nlog:\n%s", err, tail(c.Logs(), 100))
	}
}

func (c *CRIDaemon) crictlCmd(ctx context.Context, timeout time.Duration, args ...string) *exec.Cmd {
	full := append([]string{"--config", c.crictlConfig, "--runtime-endpoint", c.Endpoint, "--image-endpoint", c.Endpoint,
		"--timeout", timeout.String()}, args...)
	cmd := exec.CommandContext(ctx, CrictlPath(), full...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (c *CRIDaemon) crictl(ctx context.Context, timeout time.Duration, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	cmd := c.crictlCmd(ctx, timeout, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	return so.String(), se.String(), err
}

// Crictl runs crictl against the daemon (--runtime-endpoint and --image-endpoint its
// socket, its own config file, --timeout CrictlTimeout) and returns stdout, stderr and
// the error (an *exec.ExitError for a non-zero exit). It logs the command and its duration.
func (c *CRIDaemon) Crictl(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	start := time.Now()
	stdout, stderr, err = c.crictl(context.Background(), CrictlTimeout, args...)
	el := time.Since(start).Round(time.Millisecond)
	if err != nil {
		t.Logf("crictl %s: %v (%v)\nstderr: %s", strings.Join(args, " "), err, el, strings.TrimSpace(stderr))
	} else {
		t.Logf("crictl %s (%v)", strings.Join(args, " "), el)
	}
	return stdout, stderr, err
}

// MustCrictl is Crictl that fails the test on error; it returns stdout.
func (c *CRIDaemon) MustCrictl(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := c.Crictl(t, args...)
	if err != nil {
		t.Fatalf("crictl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// Pod is a pod sandbox started by RunPod.
type Pod struct {
	ID      string
	Config  string // its JSON config file (crictl create needs it again)
	Handler string
	LogDir  string
	ns      map[string]any // the pod's namespace_options, which its containers get too
	c       *CRIDaemon
}

// Container is a container created by Pod.CreateContainer.
type Container struct {
	ID     string
	Config string
	Pod    *Pod
}

// WritePodConfig writes the JSON config of a pod (in the daemon's directory) and returns
// its path: cgroup parent c.CgroupParent, log directory under the daemon's directory.
func (c *CRIDaemon) WritePodConfig(t testing.TB, p PodConfig) (path, logDir string) {
	t.Helper()
	var rnd [6]byte
	rand.Read(rnd[:])
	uid := hex.EncodeToString(rnd[:])
	logDir = filepath.Join(c.Dir, "logs", uid)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(c.Dir, "pod-"+uid+".json")
	if err := writeJSONFile(path, podJSON(p, uid, logDir, c.CgroupParent)); err != nil {
		t.Fatal(err)
	}
	return path, logDir
}

// WriteContainerConfig writes the JSON config of a container and returns its path.
func (c *CRIDaemon) WriteContainerConfig(t testing.TB, cc ContainerConfig) string {
	t.Helper()
	var rnd [6]byte
	rand.Read(rnd[:])
	path := filepath.Join(c.Dir, "ctr-"+hex.EncodeToString(rnd[:])+".json")
	if err := writeJSONFile(path, containerJSON(cc)); err != nil {
		t.Fatal(err)
	}
	return path
}

// RunPod starts a pod sandbox (crictl runp [--runtime HANDLER]) and returns it.
func (c *CRIDaemon) RunPod(t testing.TB, p PodConfig) *Pod {
	t.Helper()
	cfg, logDir := c.WritePodConfig(t, p)
	args := []string{"runp"}
	if p.Handler != "" {
		args = append(args, "--runtime", p.Handler)
	}
	id := strings.TrimSpace(c.MustCrictl(t, append(args, cfg)...))
	if len(id) != 64 {
		t.Fatalf("crictl runp: unexpected output %q", id)
	}
	return &Pod{ID: id, Config: cfg, Handler: p.Handler, LogDir: logDir, ns: namespaceOptions(p), c: c}
}

// CreateContainer creates a container in the pod (crictl create) without starting it.
func (p *Pod) CreateContainer(t testing.TB, cc ContainerConfig) *Container {
	t.Helper()
	// As kubelet does: a container gets its pod's namespace options.
	cc.Extra = mergeMaps(map[string]any{"linux": map[string]any{"security_context": map[string]any{"namespace_options": p.ns}}}, cc.Extra)
	cfg := p.c.WriteContainerConfig(t, cc)
	id := strings.TrimSpace(p.c.MustCrictl(t, "create", "--no-pull", p.ID, cfg, p.Config))
	if len(id) != 64 {
		t.Fatalf("crictl create: unexpected output %q", id)
	}
	return &Container{ID: id, Config: cfg, Pod: p}
}

// RunContainer creates and starts a container in the pod.
func (p *Pod) RunContainer(t testing.TB, cc ContainerConfig) *Container {
	t.Helper()
	ctr := p.CreateContainer(t, cc)
	ctr.Start(t)
	return ctr
}

// Inspect returns `crictl inspectp -o json` of the pod.
func (p *Pod) Inspect(t testing.TB) map[string]any {
	t.Helper()
	return mustJSON(t, p.c.MustCrictl(t, "inspectp", "-o", "json", p.ID))
}

// Stop stops the pod (crictl stopp): its containers are killed, its network torn down.
func (p *Pod) Stop(t testing.TB) { t.Helper(); p.c.MustCrictl(t, "stopp", p.ID) }

// Remove removes the pod (crictl rmp; the pod must be stopped unless force).
func (p *Pod) Remove(t testing.TB, force bool) {
	t.Helper()
	args := []string{"rmp"}
	if force {
		args = append(args, "--force")
	}
	p.c.MustCrictl(t, append(args, p.ID)...)
}

// Start starts the container (crictl start).
func (ctr *Container) Start(t testing.TB) { t.Helper(); ctr.Pod.c.MustCrictl(t, "start", ctr.ID) }

// ExecExitError is the error of Exec and ExecSync when the command ran and exited with a
// non-zero status. crictl v1.37 itself exits 1 for that (its exec collects the per-container
// errors and loses cli.Exit's code), so the status comes from its message.
type ExecExitError struct {
	Code int
	Err  error // crictl's exit
}

func (e *ExecExitError) Error() string {
	return fmt.Sprintf("exit status %d (crictl: %v)", e.Code, e.Err)
}
func (e *ExecExitError) Unwrap() error { return e.Err }

// ExitCode is the command's exit status.
func (e *ExecExitError) ExitCode() int { return e.Code }

// crictl's messages for a non-zero exit: streaming exec (client-go's remotecommand) and
// ExecSync (cri-api's remote runtime client).
var execExitPattern = regexp.MustCompile(`command terminated with exit code (\d+)|' exited with (\d+):`)

func execError(stderr string, err error) error {
	if err == nil {
		return nil
	}
	if m := execExitPattern.FindStringSubmatch(stderr); m != nil {
		code, _ := strconv.Atoi(m[1] + m[2])
		return &ExecExitError{Code: code, Err: err}
	}
	return err
}

// Exec runs a command in the container through the streaming server (crictl exec) and
// returns its stdout, stderr and error: an *ExecExitError if the command exited non-zero.
func (ctr *Container) Exec(t testing.TB, cmd ...string) (stdout, stderr string, err error) {
	t.Helper()
	stdout, stderr, err = ctr.Pod.c.Crictl(t, append([]string{"exec", ctr.ID}, cmd...)...)
	return stdout, stderr, execError(stderr, err)
}

// ExecSync runs a command with the CRI ExecSync call (crictl exec --sync); see Exec.
func (ctr *Container) ExecSync(t testing.TB, cmd ...string) (stdout, stderr string, err error) {
	t.Helper()
	stdout, stderr, err = ctr.Pod.c.Crictl(t, append([]string{"exec", "--sync", ctr.ID}, cmd...)...)
	return stdout, stderr, execError(stderr, err)
}

// Logs returns the container's log (crictl logs): stdout and stderr of its process.
func (ctr *Container) Logs(t testing.TB) (stdout, stderr string) {
	t.Helper()
	out, errOut, err := ctr.Pod.c.Crictl(t, "logs", ctr.ID)
	if err != nil {
		t.Fatalf("crictl logs %s: %v\n%s", ctr.ID, err, errOut)
	}
	return out, errOut
}

// ContainerStats is the part of `crictl stats -o json` a test reads.
type ContainerStats struct {
	CPUUsageCoreNanoSeconds uint64
	MemoryWorkingSetBytes   uint64
	WritableLayerUsedBytes  uint64
	Raw                     map[string]any
}

// Stats returns the container's stats (crictl stats -o json --id).
func (ctr *Container) Stats(t testing.TB) ContainerStats {
	t.Helper()
	raw := mustJSON(t, ctr.Pod.c.MustCrictl(t, "stats", "-o", "json", "--id", ctr.ID))
	var s ContainerStats
	s.Raw = raw
	list, _ := raw["stats"].([]any)
	if len(list) != 1 {
		t.Fatalf("crictl stats --id %s: %d entries, want 1: %v", ctr.ID, len(list), raw)
	}
	st, _ := list[0].(map[string]any)
	s.CPUUsageCoreNanoSeconds = jsonUint(st, "cpu", "usageCoreNanoSeconds", "value")
	s.MemoryWorkingSetBytes = jsonUint(st, "memory", "workingSetBytes", "value")
	s.WritableLayerUsedBytes = jsonUint(st, "writableLayer", "usedBytes", "value")
	return s
}

// jsonUint reads a number at path; crictl prints protobuf uint64s as strings.
func jsonUint(m map[string]any, path ...string) uint64 {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return 0
		}
		v = mm[k]
	}
	switch x := v.(type) {
	case string:
		n, _ := strconv.ParseUint(x, 10, 64)
		return n
	case float64:
		return uint64(x)
	}
	return 0
}

// Update changes the resources of the container in place (crictl update FLAGS ID, e.g.
// "--memory", "67108864", "--cpu-quota", "50000").
func (ctr *Container) Update(t testing.TB, flags ...string) {
	t.Helper()
	ctr.Pod.c.MustCrictl(t, append(append([]string{"update"}, flags...), ctr.ID)...)
}

// Inspect returns `crictl inspect -o json` of the container.
func (ctr *Container) Inspect(t testing.TB) map[string]any {
	t.Helper()
	return mustJSON(t, ctr.Pod.c.MustCrictl(t, "inspect", "-o", "json", ctr.ID))
}

// State returns the container's state (CONTAINER_RUNNING, CONTAINER_EXITED, ...).
func (ctr *Container) State(t testing.TB) string {
	t.Helper()
	st, _ := ctr.Inspect(t)["status"].(map[string]any)
	s, _ := st["state"].(string)
	return s
}

// Stop stops the container with the given grace period (crictl stop --timeout).
func (ctr *Container) Stop(t testing.TB, grace time.Duration) {
	t.Helper()
	ctr.Pod.c.MustCrictl(t, "stop", "--timeout", strconv.Itoa(int(grace.Seconds())), ctr.ID)
}

// Remove removes the container (crictl rm; force removes a running one).
func (ctr *Container) Remove(t testing.TB, force bool) {
	t.Helper()
	args := []string{"rm"}
	if force {
		args = append(args, "--force")
	}
	ctr.Pod.c.MustCrictl(t, append(args, ctr.ID)...)
}

// Pids returns the host pids of the processes in the container's cgroup (pids controller).
func (ctr *Container) Pids(t testing.TB) []int {
	t.Helper()
	return pidsInCgroupsOf([]string{ctr.ID})
}

func mustJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("crictl JSON output: %v\n%s", err, s)
	}
	return m
}

// Critest runs critest against the daemon (-runtime-endpoint/-image-endpoint its socket,
// -runtime-handler, ginkgo focus and skip, a JSON report) and returns which specs passed,
// failed and were skipped. A failed spec does not fail t: the caller decides.
func (c *CRIDaemon) Critest(t testing.TB, o CritestOptions) *CritestResult {
	t.Helper()
	if !fileExists(CritestPath()) {
		t.Fatalf("critest missing at %s: run `bash scripts/deps.sh cri`", CritestPath())
	}
	if o.Focus == "" {
		o.Focus = CritestFocus
	}
	if o.Skip == "" {
		o.Skip = CritestSkip
	}
	if o.Handler == "" {
		o.Handler = c.DefaultRuntime
	}
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Minute
	}
	dir, err := os.MkdirTemp(c.Dir, "critest-")
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	args := []string{
		"-runtime-endpoint", c.Endpoint, "-image-endpoint", c.Endpoint,
		"-config", c.crictlConfig,
		"-runtime-handler", o.Handler,
		"-ginkgo.focus", o.Focus,
		"-ginkgo.skip", o.Skip,
		"-ginkgo.json-report", report,
		"-ginkgo.no-color",
		"-ginkgo.timeout", o.Timeout.String(),
	}
	args = append(args, o.Extra...)
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, CritestPath(), args...)
	cmd.Dir = dir
	// critest's pods put their log directories (and the volume specs their host dirs) in TMPDIR.
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	runErr := cmd.Run()
	el := time.Since(start)
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("critest (%v, %v) wrote no report: %v\n%s", runErr, el.Round(time.Millisecond), err, tail(out.String(), 80))
	}
	r, err := parseCritestReport(b)
	if err != nil {
		t.Fatal(err)
	}
	r.Duration, r.Output, r.Err = el, out.String(), runErr
	t.Logf("critest on handler %s: %d passed, %d failed, %d skipped in %v", o.Handler, len(r.Passed), len(r.Failed), len(r.Skipped), el.Round(time.Millisecond))
	return r
}

// IDs returns the ids of every pod sandbox and container the CRI plugin created so far
// (from its log).
func (c *CRIDaemon) IDs() []string { return criIDsInLog(c.Logs()) }

// ShimSockets returns the addresses of every shim containerd connected to so far (from its
// log), whatever shim served them.
func (c *CRIDaemon) ShimSockets() []string { return shimAddressesInLog(c.Logs()) }

// cleanup: remove the pods left, assert that nothing of them is left, then tear down the
// rest (containerd is stopped by the Daemon's own cleanup, which runs next).
func (c *CRIDaemon) cleanup(t testing.TB) {
	if c.Running() {
		if out, _, err := c.crictl(context.Background(), time.Minute, "pods", "-q"); err == nil && strings.TrimSpace(out) != "" {
			t.Logf("cleanup: removing pods left by the test: %s", strings.Join(strings.Fields(out), " "))
			if _, errOut, err := c.crictl(context.Background(), 2*time.Minute, "rmp", "--all", "--force"); err != nil {
				t.Errorf("cleanup: crictl rmp --all --force: %v: %s", err, errOut)
			}
		}
	}
	ids := c.IDs()
	c.savedIDs = ids
	c.AssertNoLeftovers(t, 15*time.Second)
	c.Stop(t)
	for _, msg := range c.forceClean(ids) {
		t.Logf("cleanup: %s", msg)
	}
}

// Leftovers lists what remains of the pods and containers the daemon created (ids from
// its log): processes in their cgroups, shims and runc processes of the daemon, mounts
// under its directory, network namespaces, shim sockets, runc state, cgroups, CNI
// allocations. Empty means clean.
func (c *CRIDaemon) Leftovers() []string {
	log := c.Logs()
	ids := criIDsInLog(log)
	var left []string
	for _, a := range shimAddressesInLog(log) {
		if fileExists(a) {
			left = append(left, "shim socket "+a)
		}
	}
	for _, pid := range pidsInCgroupsOf(ids) {
		left = append(left, fmt.Sprintf("process %d in a pod/container cgroup: %s", pid, cmdline(pid)))
	}
	for _, p := range Processes() {
		if strings.Contains(p.Cmdline, c.Address) || strings.Contains(p.Cmdline, c.State) {
			left = append(left, "process "+p.String())
		}
	}
	for _, mp := range mountsUnder(c.Dir) {
		left = append(left, "mount "+mp)
	}
	// netns_mounts_under_state_dir: the CRI plugin's state dir, STATE/io.containerd.grpc.v1.cri.
	netnsDir := filepath.Join(c.State, "io.containerd.grpc.v1.cri", "netns")
	for name := range dirNames(netnsDir) {
		left = append(left, "network namespace "+filepath.Join(netnsDir, name))
	}
	for name := range dirNames("/var/run/netns") {
		if !c.netnsBefore[name] && strings.HasPrefix(name, "cni-") {
			left = append(left, "network namespace /var/run/netns/"+name)
		}
	}
	for _, id := range ids {
		for _, debug := range []bool{false, true} {
			if s := runcShimSocket(c.Address, CRINamespace, id, debug); fileExists(s) && !slices.Contains(left, "shim socket "+s) {
				left = append(left, "shim socket "+s)
			}
		}
		for _, root := range c.runcRoots {
			if p := filepath.Join(root, id); fileExists(p) {
				left = append(left, "runc state "+p)
			}
		}
		if b := filepath.Join(c.State, "io.containerd.runtime.v2.task", CRINamespace, id); fileExists(b) {
			left = append(left, "bundle "+b)
		}
	}
	for _, cg := range cgroupsNamed(ids) {
		left = append(left, "cgroup "+cg)
	}
	for _, f := range ipamAllocations(filepath.Join(c.IPAMDir, c.CNINetwork)) {
		left = append(left, "IP allocation "+f)
	}
	for _, f := range cniResults(c.CNINetwork, ids) {
		left = append(left, "CNI result cache "+f)
	}
	sort.Strings(left)
	return left
}

// AssertNoLeftovers waits up to within until Leftovers is empty and fails the test
// otherwise, listing them.
func (c *CRIDaemon) AssertNoLeftovers(t testing.TB, within time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := c.Leftovers()
		if len(left) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("containerd %s CRI: %d things left of the test's pods after %v:\n  %s", c.Version, len(left), within, strings.Join(left, "\n  "))
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// forceClean removes, with containerd stopped, what pods of ids may have left outside the
// daemon's directory (the Daemon's cleanup handles processes mentioning it, runc
// containers of its bundles, shim sockets, mounts and the directory itself).
func (c *CRIDaemon) forceClean(ids []string) []string {
	var msgs []string
	for _, pid := range pidsInCgroupsOf(ids) {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			msgs = append(msgs, fmt.Sprintf("killed pod process %d", pid))
		}
	}
	for _, id := range ids {
		for _, root := range c.runcRoots {
			if fileExists(filepath.Join(root, id)) {
				out, err := exec.Command("runc", "--root", root, "delete", "--force", id).CombinedOutput()
				msgs = append(msgs, fmt.Sprintf("runc --root %s delete --force %s: %v %s", root, id, err, strings.TrimSpace(string(out))))
			}
		}
	}
	for _, root := range c.runcRoots {
		os.Remove(root) // only if empty
	}
	// A pod whose RunPodSandbox never returned (its client gave up while containerd
	// started it) has no id in the log, but its processes (a runc init) are in the pods'
	// cgroup parent.
	if c.CgroupParent != "" {
		seen := map[int]bool{}
		for _, h := range cgroupHierarchies() {
			for _, pid := range cgroupProcs(filepath.Join(h, c.CgroupParent)) {
				if seen[pid] {
					continue
				}
				seen[pid] = true
				cmd := cmdline(pid)
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					msgs = append(msgs, fmt.Sprintf("killed process %d in the pods' cgroup parent: %s", pid, cmd))
				}
			}
		}
	}
	for i := 0; i < 50 && len(pidsInCgroupsOf(ids)) > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	removed := 0
	for _, cg := range cgroupsNamed(ids) {
		if removeCgroup(cg) == nil {
			removed++
		}
	}
	if removed > 0 {
		msgs = append(msgs, fmt.Sprintf("removed %d cgroups of the pods and containers", removed))
	}
	// The pods' cgroup parent is created by runc and never removed by anyone (kubelet owns
	// it in a cluster).
	for _, h := range cgroupHierarchies() {
		removeCgroup(filepath.Join(h, c.CgroupParent))
	}
	for _, f := range cniResults(c.CNINetwork, ids) {
		if os.Remove(f) == nil {
			msgs = append(msgs, "removed "+f)
		}
	}
	if _, err := net.InterfaceByName(c.Bridge); err == nil {
		if out, err := exec.Command("ip", "link", "delete", c.Bridge).CombinedOutput(); err != nil {
			msgs = append(msgs, fmt.Sprintf("ip link delete %s: %v %s", c.Bridge, err, out))
		}
	}
	return msgs
}

var criSweepOnce sync.Once

// sweepStaleCRI removes what the CRI daemons of test processes that died without their
// cleanup (killed by go test -timeout) left outside their directories: the bridge, the pods'
// cgroup parent with the processes in it, CNI result cache files. ContainerdWith's sweep then
// handles the directories (shims, runc containers, sockets, mounts).
func sweepStaleCRI() (msgs []string) {
	markers, _ := filepath.Glob("/tmp/ig-*/cri")
	for _, m := range markers {
		dir := filepath.Dir(m)
		if !ownerGone(dir) {
			continue
		}
		var bridge, parent, network string
		b, _ := os.ReadFile(m)
		if n, _ := fmt.Sscanf(string(b), "%s %s %s", &bridge, &parent, &network); n != 3 || !strings.HasPrefix(parent, "/ig-cri-") {
			continue
		}
		stale := &CRIDaemon{Bridge: bridge, CgroupParent: parent, CNINetwork: network}
		killed := map[int]bool{}
		for _, h := range cgroupHierarchies() {
			for _, pid := range cgroupProcs(filepath.Join(h, parent)) {
				if !killed[pid] && syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed[pid] = true
					msgs = append(msgs, fmt.Sprintf("%s: killed pod process %d", dir, pid))
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
		// The ids of its pods and containers: their bundles (the log may be long).
		var ids []string
		bundles, _ := filepath.Glob(filepath.Join(dir, "state", "io.containerd.runtime.v2.task", CRINamespace, "*"))
		for _, b := range bundles {
			ids = append(ids, filepath.Base(b))
		}
		for _, msg := range stale.forceClean(ids) {
			msgs = append(msgs, dir+": "+msg)
		}
		os.Remove(m)
	}
	return msgs
}

// ownerGone reports whether the test process that created a daemon directory has exited
// (its owner file: "PID STARTTIME").
func ownerGone(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "owner"))
	if err != nil {
		return false
	}
	var pid int
	var start string
	if n, _ := fmt.Sscanf(string(b), "%d %s", &pid, &start); n != 2 {
		return false
	}
	return pid != os.Getpid() && !(processAlive(pid) && procStartTime(pid) == start)
}

// cgroupProcs lists the processes in the cgroup dir and its descendants.
func cgroupProcs(dir string) []int {
	var pids []int
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// finalCheck runs after the Daemon's cleanup: nothing of the daemon may remain.
func (c *CRIDaemon) finalCheck(t testing.TB) {
	if c.Daemon == nil { // containerd did not start: the bridge may exist already
		exec.Command("ip", "link", "delete", c.Bridge).Run()
		return
	}
	var left []string
	if fileExists(c.Dir) && os.Getenv("ISOGUARD_KEEP_TMP") != "1" {
		left = append(left, "directory "+c.Dir)
	}
	for _, mp := range mountsUnder(c.Dir) {
		left = append(left, "mount "+mp)
	}
	for _, p := range ProcessesMatching(c.Dir + "/") {
		left = append(left, "process "+p.String())
	}
	if _, err := net.InterfaceByName(c.Bridge); err == nil {
		left = append(left, "bridge "+c.Bridge)
		exec.Command("ip", "link", "delete", c.Bridge).Run()
	}
	ids := c.savedIDs
	for _, pid := range pidsInCgroupsOf(ids) {
		left = append(left, fmt.Sprintf("process %d in a pod/container cgroup: %s", pid, cmdline(pid)))
	}
	for _, cg := range cgroupsNamed(append(ids, strings.TrimPrefix(c.CgroupParent, "/"))) {
		left = append(left, "cgroup "+cg)
	}
	if len(left) > 0 {
		t.Errorf("after cleanup, left of containerd %s CRI daemon %s:\n  %s", c.Version, c.Dir, strings.Join(left, "\n  "))
	}
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// mountsUnder lists the mount points below dir.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mps []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		if mp := unescapeMountinfo(f[4]); strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	return mps
}

// cgroupHierarchies lists the mounted cgroup hierarchies (v1 controllers and the unified one).
func cgroupHierarchies() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var hs []string
	for _, l := range strings.Split(string(b), "\n") {
		_, after, ok := strings.Cut(l, " - ")
		f := strings.Fields(l)
		if !ok || len(f) < 5 {
			continue
		}
		if fs := strings.Fields(after); len(fs) > 0 && (fs[0] == "cgroup" || fs[0] == "cgroup2") {
			mp := unescapeMountinfo(f[4])
			if !seen[mp] {
				seen[mp] = true
				hs = append(hs, mp)
			}
		}
	}
	return hs
}

// cgroupsNamed lists the cgroup directories, in every hierarchy, whose name contains one of
// names (runc names a container's cgroup after its id; systemd drivers wrap it), deepest first.
func cgroupsNamed(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	var found []string
	for _, h := range cgroupHierarchies() {
		filepath.WalkDir(h, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() || p == h {
				return nil
			}
			base := d.Name()
			for _, n := range names {
				if n != "" && strings.Contains(base, n) {
					found = append(found, p)
					break
				}
			}
			return nil
		})
	}
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	return found
}

// removeCgroup removes a cgroup directory and its children, deepest first.
func removeCgroup(p string) error {
	var dirs []string
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, q)
		}
		return nil
	})
	var last error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			last = err
		}
	}
	return last
}

// pidsInCgroupsOf returns the processes whose cgroup path (any hierarchy) mentions one of ids.
func pidsInCgroupsOf(ids []string) []int {
	if len(ids) == 0 {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !processAlive(pid) {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		match := false
		for sc.Scan() && !match {
			for _, id := range ids {
				if strings.Contains(sc.Text(), id) {
					match = true
					break
				}
			}
		}
		f.Close()
		if match {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cniResultsDir is libcni's default cache dir (go-cni sets none): a result per network,
// container id and interface, removed on CNI DEL.
const cniResultsDir = "/var/lib/cni/results"

// cniResults lists the cached CNI results of the daemon's network and of the loopback
// network containerd adds itself (go-cni WithLoNetwork: "cni-loopback") for the pods ids.
func cniResults(network string, ids []string) []string {
	files, _ := filepath.Glob(filepath.Join(cniResultsDir, network+"-*"))
	for _, id := range ids {
		lo, _ := filepath.Glob(filepath.Join(cniResultsDir, "cni-loopback-"+id+"-*"))
		files = append(files, lo...)
	}
	sort.Strings(files)
	return files
}

// ipamAllocations lists host-local's allocation files (named after the IP) in dir.
func ipamAllocations(dir string) []string {
	var files []string
	for name := range dirNames(dir) {
		if net.ParseIP(name) != nil {
			files = append(files, filepath.Join(dir, name))
		}
	}
	sort.Strings(files)
	return files
}

// TryRunPod is RunPod for a pod that may be refused: it returns crictl's error and stderr
// instead of failing the test.
func (c *CRIDaemon) TryRunPod(t testing.TB, p PodConfig) (*Pod, string, error) {
	t.Helper()
	cfg, logDir := c.WritePodConfig(t, p)
	args := []string{"runp"}
	if p.Handler != "" {
		args = append(args, "--runtime", p.Handler)
	}
	out, errOut, err := c.Crictl(t, append(args, cfg)...)
	if err != nil {
		return nil, errOut, err
	}
	return &Pod{ID: strings.TrimSpace(out), Config: cfg, Handler: p.Handler, LogDir: logDir, ns: namespaceOptions(p), c: c}, errOut, nil
}

// TryRunContainer creates and starts a container that may be refused: it returns crictl's
// error and stderr (of create, or of start) instead of failing the test. A container
// created but not started is returned with the start's error.
func (p *Pod) TryRunContainer(t testing.TB, cc ContainerConfig) (*Container, string, error) {
	t.Helper()
	cc.Extra = mergeMaps(map[string]any{"linux": map[string]any{"security_context": map[string]any{"namespace_options": p.ns}}}, cc.Extra)
	cfg := p.c.WriteContainerConfig(t, cc)
	out, errOut, err := p.c.Crictl(t, "create", "--no-pull", p.ID, cfg, p.Config)
	if err != nil {
		return nil, errOut, err
	}
	ctr := &Container{ID: strings.TrimSpace(out), Config: cfg, Pod: p}
	_, errOut, err = p.c.Crictl(t, "start", ctr.ID)
	return ctr, errOut, err
}
