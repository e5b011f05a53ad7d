//go:build integration && linux

package cri

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isoguard/isoguard/audit"
	"github.com/isoguard/isoguard/integration/harness"
)

// TestStress is `make stress` (ISOGUARD_STRESS=1): load on one containerd 2.4.2 through its CRI
// plugin, every call a crictl process run from its own goroutine, as many kubelet workers would
// make them.
//
//  1. Start ISOGUARD_STRESS_PODS pods through isoguard (default 100), half trusted
//     (kube-system: the runc shim) and half untrusted (team-a: gVisor's shim); as many trusted
//     pods on the plain runc handler and ISOGUARD_STRESS_RUNSC_PODS (default 10) untrusted ones
//     on gVisor's shim as the handler "runsc", interleaved with them (which of a pair goes
//     first alternates), so both see the same load; and through isoguard pods the policy
//     must deny (host IPC: RunPodSandbox; a host path mount: StartContainer) and, the other
//     way round, trusted pods with both, which must run. ISOGUARD_STRESS_PARALLEL pods are in
//     flight at a time (default 32; 0: all at once, which two cores cannot take: gVisor's
//     pods then miss crictl's 5 minutes). A pod is runp + create + start of one container;
//     its start latency is the time of those three calls.
//  2. Every pod runs or is denied as the policy says: a denial is PermissionDenied naming the
//     rule. From inside every isoguard pod: the kernel of /proc/version (the host's or
//     gVisor's) and the uid (0 or 65534), then ISOGUARD_STRESS_EXECS more execs
//     (default 1); in place updates, which cost a fifth of an exec here, make up the audit
//     volume: ISOGUARD_STRESS_UPDATES per trusted container (default: stressUpdates
//     spread over them, 104 each at 100 pods, so that the trail rotates at least twice
//     whatever ISOGUARD_STRESS_PODS; many containers per crictl call), and one past the
//     limits per untrusted container, denied
//     with PermissionDenied naming untrusted.update-limits. Calls go to all the pods at
//     once (ISOGUARD_STRESS_EXEC_PARALLEL crictl processes, default 16), so their wrappers
//     write the audit trail at the same time, and it rotates (audit.maxSizeMB 1) several
//     times.
//  3. One wrapper process per running isoguard pod; `isoguard ps` lists each.
//  4. Every pod is stopped and removed, ISOGUARD_STRESS_RM_PARALLEL at a time (default 8);
//     nothing is left (the harness's leftovers, runsc state, gVisor and wrapper processes).
//     Removal is bounded more than the start because of a race in containerd 2.4 that a
//     busy machine opens: CRI's exit handler gives a task's delete 10 s (handleEventTimeout,
//     not configurable); past that containerd removes the bundle while its own clean-up of
//     the disconnected shim still runs the shim's delete in it, and gVisor's `runsc delete
//     --log BUNDLE/log.json` creates the bundle directory again (its log opening makes the
//     parent directory), which is then left behind. With 32 removals in flight on two cores
//     that happened to one pod of the plain runsc handler in 169 (docs/benchmarks.md).
//  5. The audit trail, all its files: every line is a JSON record, no file past the limit,
//     and exactly one record per decision the run caused (per pod: start and create of the
//     sandbox, join and create of the container, one per exec and per update; a pod
//     denied at its start: its start), with the outcome the policy gives.
//
// It logs, and writes to ISOGUARD_STRESS_OUT, a Markdown report: p50 and p99 of the start
// latency through isoguard and through the plain handler, their ratio, wall times, audit
// records and rotations; ISOGUARD_STRESS_ARTIFACTS receives containerd's log and the audit
// trail. docs/benchmarks.md ("Load") has the method and the results.
func TestStress(t *testing.T) {
	if os.Getenv("ISOGUARD_STRESS") != "1" {
		t.Skip("set ISOGUARD_STRESS=1 (make stress)")
	}
	cfg := stressConfig{
		pods:         envInt(t, "ISOGUARD_STRESS_PODS", 100),
		runscPods:    envInt(t, "ISOGUARD_STRESS_RUNSC_PODS", 10),
		execs:        envInt(t, "ISOGUARD_STRESS_EXECS", 1),
		updates:      envInt(t, "ISOGUARD_STRESS_UPDATES", -1),
		parallel:     envInt(t, "ISOGUARD_STRESS_PARALLEL", 32),
		rmParallel:   envInt(t, "ISOGUARD_STRESS_RM_PARALLEL", 8),
		execParallel: envInt(t, "ISOGUARD_STRESS_EXEC_PARALLEL", 16),
		denied:       envInt(t, "ISOGUARD_STRESS_DENIED", 3),
	}
	if cfg.pods < 2 || cfg.pods%2 != 0 {
		t.Fatalf("ISOGUARD_STRESS_PODS=%d: want an even number >= 2", cfg.pods)
	}
	if cfg.updates < 0 {
		trusted := cfg.pods/2 + cfg.denied // isoTrusted and trustedPrivileged
		cfg.updates = (stressUpdates + trusted - 1) / trusted
	}
	began := time.Now()
	loadBefore := loadAvg()
	// Hundreds of calls queue up behind each other on two cores: a call's own timeout is
	// generous, a stuck call still ends the test.
	saved := harness.CrictlTimeout
	harness.CrictlTimeout = 5 * time.Minute
	t.Cleanup(func() { harness.CrictlTimeout = saved })

	// containerd 2.4's CRI collects every task's CPU stats every second
	// (stats_collect_period, default 1s); gVisor's shim answers each with a `runsc events
	// --stats` process. With a hundred gVisor sandboxes on two cores that alone takes the
	// machine, and gVisor's shims then miss containerd's 2 s State deadline (exec and stop
	// fail with "failed to load task: context deadline exceeded", through isoguard and on
	// the plain runsc handler alike). ISOGUARD_STRESS_STATS_PERIOD=1s shows it.
	statsPeriod := cmp.Or(os.Getenv("ISOGUARD_STRESS_STATS_PERIOD"), "1m")
	// containerd gives a task's State 2 s (io.containerd.timeout.task.state) when it loads
	// the task for an exec, an update or a stop, and a dead shim's cleanup 5 s
	// (io.containerd.timeout.shim.cleanup); gVisor's shim answers every State by running
	// `runsc state`, and its delete runs runsc too: on two busy cores that takes longer, and
	// exec, stop and removal fail (a bundle is left behind).
	stateTimeout := cmp.Or(os.Getenv("ISOGUARD_STRESS_STATE_TIMEOUT"), "30s")
	n := startIsoNode(t, "2.4", nodeOptions{
		extraHandlers:  func(n *isoNode) []harness.RuntimeHandler { return []harness.RuntimeHandler{n.runscHandler()} },
		auditMaxSizeMB: 1, auditMaxBackups: stressMaxBackups,
		runtimeConfig: map[string]any{"stats_collect_period": statsPeriod},
		extraConfig: fmt.Sprintf("\n[timeouts]\n  \"io.containerd.timeout.task.state\" = %q\n  \"io.containerd.timeout.shim.cleanup\" = %q\n  \"io.containerd.timeout.shim.shutdown\" = %q\n",
			stateTimeout, stateTimeout, stateTimeout),
	})
	if dir := os.Getenv("ISOGUARD_STRESS_ARTIFACTS"); dir != "" {
		// containerd's whole log and the audit trail, kept for a look after the run.
		t.Cleanup(func() { saveArtifacts(t, n, dir) })
	}
	hostKernel, err := os.ReadFile("/proc/version")
	if err != nil {
		t.Fatal(err)
	}
	cfg.statsPeriod, cfg.stateTimeout = statsPeriod, stateTimeout
	s := &stressRun{t: t, n: n, cfg: cfg, hostKernel: strings.TrimSpace(string(hostKernel))}
	s.plan()

	// 1. Start.
	start := time.Now()
	s.each(s.pods, cfg.parallel, s.startPod)
	startWall := time.Since(start)
	t.Logf("started %d pods in %v", len(s.pods), startWall.Round(time.Millisecond))

	// 2. Runs or denied as the policy says; inside checks, execs and updates.
	s.checkStarts()
	execStart := time.Now()
	s.callAll()
	execWall := time.Since(execStart)
	t.Logf("%d execs and %d updates in %v", s.execCount(), s.updateCount(), execWall.Round(time.Millisecond))

	// 3. One wrapper per running isoguard pod.
	s.checkWrappers()

	// 4. Removal.
	rmStart := time.Now()
	s.each(s.pods, cfg.rmParallel, s.removePod)
	rmWall := time.Since(rmStart)
	t.Logf("removed %d pods in %v", len(s.started()), rmWall.Round(time.Millisecond))
	for _, p := range s.pods {
		if p.rmErr != "" {
			t.Errorf("%s: removal: %s", p.name, p.rmErr)
		}
	}
	assertEmpty(t, n.CRIDaemon)
	n.assertNoSandboxLeft(t)

	// 5. The audit trail.
	files := s.checkAudit()

	// Report.
	s.report(stressTimes{start: startWall, exec: execWall, remove: rmWall, total: time.Since(began)}, files, loadBefore)
}

// stressUpdates is how many updates of trusted containers a run makes by default. An
// update's record is about 450 bytes: 5500 of them pass 2 MiB even without the other
// records, two rotations at audit.maxSizeMB 1 whatever the number of pods (at 100 pods: 104
// updates for each of the 53 trusted containers, a trail of about 3 MB).
const stressUpdates = 5500

// stressMaxBackups keeps every rotated file of a run (a run writes a few MiB).
const stressMaxBackups = 50

type stressConfig struct {
	pods, runscPods, execs, updates, parallel, rmParallel, execParallel, denied int
	statsPeriod, stateTimeout                                                   string
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		t.Fatalf("%s=%q: want a number >= 0", name, v)
	}
	return i
}

// podKind is what a pod of the run is and what must happen to it.
type podKind int

const (
	isoTrusted        podKind = iota // kube-system through isoguard: the runc shim, unchanged
	isoUntrusted                     // team-a through isoguard: gVisor's shim, uid 65534
	plainRunc                        // kube-system on the runc handler (isoTrusted's baseline)
	plainRunsc                       // team-a on the runsc handler (isoUntrusted's baseline)
	deniedPod                        // team-a with host IPC through isoguard: RunPodSandbox denied
	deniedCtr                        // team-a through isoguard, its container mounts /etc: StartContainer denied
	trustedPrivileged                // kube-system with host IPC and /etc mounted, through isoguard: runs
)

var podKinds = map[podKind]struct {
	name, prefix, ns, handler string
	isoguard, gvisor, hostIPC bool
	hostPath                  bool
}{
	isoTrusted:        {"trusted through isoguard", "iso-t", trustedNS, isoguardHandler, true, false, false, false},
	isoUntrusted:      {"untrusted through isoguard", "iso-u", untrustedNS, isoguardHandler, true, true, false, false},
	plainRunc:         {"trusted on the runc handler", "runc", trustedNS, "runc", false, false, false, false},
	plainRunsc:        {"untrusted on the runsc handler", "runsc", untrustedNS, "runsc", false, true, false, false},
	deniedPod:         {"untrusted with host IPC", "deny-ipc", untrustedNS, isoguardHandler, true, true, true, false},
	deniedCtr:         {"untrusted with a host path", "deny-mount", untrustedNS, isoguardHandler, true, true, false, true},
	trustedPrivileged: {"trusted with host IPC and a host path", "priv", trustedNS, isoguardHandler, true, false, true, true},
}

// stressPod is one pod of the run and what happened to it.
type stressPod struct {
	kind           podKind
	round          int // the launch round: a pod through isoguard and its baseline share one
	name           string
	podCfg, ctrCfg string
	id, ctrID      string
	latency        time.Duration // runp + create + start
	rmLatency      time.Duration // stopp + rmp
	failedAt       string        // the crictl command that failed while starting
	stderr         string        // its stderr
	kernel, uid    string        // seen from inside
	execs          int           // execs run in the pod (one audit record each)
	updates        int           // updates run on its container (one audit record each)
	execErrs       []string
	updateDenial   string // crictl's stderr for the update past the limits
	rmErr          string
	mu             sync.Mutex
}

func (p *stressPod) running() bool { return p.id != "" && p.ctrID != "" && p.failedAt == "" }

type stressRun struct {
	t          *testing.T
	n          *isoNode
	cfg        stressConfig
	hostKernel string
	pods       []*stressPod
}

// quietT drops the harness's log line per crictl call (thousands here); failures are
// collected and reported by the test itself.
type quietT struct{ testing.TB }

func (quietT) Logf(string, ...any) {}

func (s *stressRun) crictl(args ...string) (string, string, error) {
	return s.n.Crictl(quietT{s.t}, args...)
}

// plan writes the configs of every pod, in launch order: per round one trusted and one
// untrusted pod through isoguard, the trusted one's baseline on the runc handler and in some
// rounds the untrusted one's on the runsc handler, which of a pair goes first alternating
// every round; the pods the policy must deny (and the trusted privileged ones) spread over
// the rounds.
func (s *stressRun) plan() {
	rounds := s.cfg.pods / 2
	var extras []podKind
	for range s.cfg.denied {
		extras = append(extras, deniedPod, deniedCtr, trustedPrivileged)
	}
	every := max(1, rounds/max(1, len(extras)))
	runscEvery := 0 // a runsc pod beside the untrusted isoguard pod of every runscEvery-th round
	if s.cfg.runscPods > 0 {
		runscEvery = max(1, rounds/s.cfg.runscPods)
	}
	count := map[podKind]int{}
	round := 0
	add := func(k podKind) {
		count[k]++
		info := podKinds[k]
		p := &stressPod{kind: k, round: round, name: fmt.Sprintf("%s-%03d", info.prefix, count[k])}
		nsOpts := map[string]any{"network": 0, "pid": 1, "ipc": 0}
		pc := harness.PodConfig{Name: p.name, Namespace: info.ns}
		if info.hostIPC {
			nsOpts["ipc"] = 2
			pc.Extra = map[string]any{"linux": map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"ipc": 2}}}}
		}
		p.podCfg, _ = s.n.WritePodConfig(s.t, pc)
		extra := map[string]any{"linux": map[string]any{"security_context": map[string]any{"namespace_options": nsOpts}}}
		if info.hostPath {
			extra["mounts"] = []map[string]any{{"container_path": "/host-etc", "host_path": "/etc", "readonly": true}}
		}
		// An idle process (sleeper's loop forks every second, which in a hundred gVisor
		// sandboxes on systrap takes the machine); StopPodSandbox kills it at once.
		p.ctrCfg = s.n.WriteContainerConfig(s.t, harness.ContainerConfig{Name: "app", Command: []string{"sleep", "86400"}, Extra: extra})
		s.pods = append(s.pods, p)
	}
	for i := range rounds {
		round = i
		runsc := runscEvery > 0 && i%runscEvery == 0 && count[plainRunsc] < s.cfg.runscPods
		if i%2 == 0 {
			add(isoTrusted)
			add(plainRunc)
			if runsc {
				add(plainRunsc)
			}
			add(isoUntrusted)
		} else {
			add(plainRunc)
			add(isoTrusted)
			add(isoUntrusted)
			if runsc {
				add(plainRunsc)
			}
		}
		if len(extras) > 0 && i%every == every-1 {
			add(extras[0])
			extras = extras[1:]
		}
	}
	for _, k := range extras {
		add(k)
	}
}

// each runs f for every pod from its own goroutine, at most parallel at a time (0: all).
func (s *stressRun) each(pods []*stressPod, parallel int, f func(*stressPod)) {
	if parallel <= 0 {
		parallel = len(pods)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, p := range pods {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(p)
		}()
	}
	wg.Wait()
}

// startPod starts a pod as kubelet does: RunPodSandbox, CreateContainer, StartContainer.
func (s *stressRun) startPod(p *stressPod) {
	begin := time.Now()
	step := func(args ...string) string {
		out, errOut, err := s.crictl(args...)
		if err != nil {
			p.failedAt, p.stderr = args[0], fmt.Sprintf("%v: %s", err, strings.TrimSpace(errOut))
			return ""
		}
		return strings.TrimSpace(out)
	}
	if p.id = step("runp", "--runtime", podKinds[p.kind].handler, p.podCfg); p.id == "" {
		return
	}
	if p.ctrID = step("create", "--no-pull", p.id, p.ctrCfg, p.podCfg); p.ctrID == "" {
		return
	}
	if step("start", p.ctrID); p.failedAt != "" {
		return
	}
	p.latency = time.Since(begin)
}

// checkStarts: every pod that must run runs; every pod that must be denied is, with
// PermissionDenied and the rule, the offender and the tenant.
func (s *stressRun) checkStarts() {
	t := s.t
	for _, p := range s.pods {
		what := fmt.Sprintf("%s (%s)", p.name, podKinds[p.kind].name)
		switch p.kind {
		case deniedPod:
			if p.failedAt != "runp" {
				t.Errorf("%s: started (failed at %q), want RunPodSandbox denied", what, p.failedAt)
				continue
			}
			wantDenial(t, "2.4", what+": RunPodSandbox", p.stderr, `isoguard: denied by rule untrusted.hostpath: mount /dev/shm is not allowed (tenant "`+untrustedNS+`")`)
		case deniedCtr:
			if p.failedAt != "start" {
				t.Errorf("%s: failed at %q (%s), want StartContainer denied", what, p.failedAt, p.stderr)
				continue
			}
			wantDenial(t, "2.4", what+": StartContainer", p.stderr, `isoguard: denied by rule untrusted.hostpath: mount /etc is not allowed (tenant "`+untrustedNS+`")`)
		default:
			if !p.running() {
				t.Errorf("%s: %s failed: %s", what, p.failedAt, p.stderr)
			}
		}
	}
	if t.Failed() {
		t.FailNow() // the cleanup removes what runs and reports what is left
	}
}

// callAll checks every running isoguard pod from inside (kernel, uid), runs the extra execs
// and the updates: round by round over the pods, so that their wrappers write the audit
// trail at the same time.
func (s *stressRun) callAll() {
	var pods, trusted []*stressPod
	for _, p := range s.pods {
		if p.running() && podKinds[p.kind].isoguard {
			pods = append(pods, p)
			if !podKinds[p.kind].gvisor {
				trusted = append(trusted, p)
			}
		}
	}
	var jobs []func()
	exec := func(p *stressPod, out *string, cmd ...string) func() {
		return func() {
			stdout, errOut, err := s.crictl(append([]string{"exec", "--sync", p.ctrID}, cmd...)...)
			p.mu.Lock()
			defer p.mu.Unlock()
			p.execs++ // a failed exec fails the test; the audit count is then moot
			switch {
			case err != nil:
				p.execErrs = append(p.execErrs, fmt.Sprintf("exec %v: %v: %s", cmd, err, strings.TrimSpace(errOut)))
			case out != nil:
				*out = strings.TrimSpace(stdout)
			case strings.TrimSpace(stdout) != cmd[1]:
				p.execErrs = append(p.execErrs, fmt.Sprintf("exec %v: output %q", cmd, stdout))
			}
		}
	}
	for _, p := range pods {
		jobs = append(jobs, exec(p, &p.kernel, "cat", "/proc/version"))
	}
	for _, p := range pods {
		jobs = append(jobs, exec(p, &p.uid, "id", "-u"))
	}
	// Updates of the trusted containers, up to 27 in one crictl call (crictl update takes
	// several ids, updates them one after the other and stops at the first error), between
	// the execs.
	const batch = 27
	var updates []func()
	for i := range s.cfg.updates {
		for b := 0; b < len(trusted); b += batch {
			ps := trusted[b:min(b+batch, len(trusted))]
			args := []string{"update", "--cpu-share", strconv.Itoa(512 + i)}
			for _, p := range ps {
				args = append(args, p.ctrID)
			}
			updates = append(updates, func() {
				_, errOut, err := s.crictl(args...)
				for _, p := range ps {
					p.mu.Lock()
					p.updates++
					if err != nil {
						p.execErrs = append(p.execErrs, fmt.Sprintf("update --cpu-share %d (with %d containers): %v: %s", 512+i, len(ps), err, strings.TrimSpace(errOut)))
					}
					p.mu.Unlock()
				}
			})
		}
	}
	// One update past the policy's memory limit per untrusted container: denied.
	for _, p := range pods {
		if podKinds[p.kind].gvisor {
			updates = append(updates, func() {
				_, errOut, err := s.crictl("update", "--memory", strconv.Itoa((limitMB+1)<<20), p.ctrID)
				p.mu.Lock()
				defer p.mu.Unlock()
				p.updates++
				p.updateDenial = errOut
				if err == nil {
					p.execErrs = append(p.execErrs, "an update past the memory limit went through")
				}
			})
		}
	}
	var execs []func()
	for i := range s.cfg.execs {
		for _, p := range pods {
			execs = append(execs, exec(p, nil, "echo", strconv.Itoa(i)))
		}
	}
	// Interleave the execs with the updates.
	for len(execs)+len(updates) > 0 {
		for range max(1, len(updates)/max(1, len(execs))) {
			if len(updates) > 0 {
				jobs, updates = append(jobs, updates[0]), updates[1:]
			}
		}
		if len(execs) > 0 {
			jobs, execs = append(jobs, execs[0]), execs[1:]
		}
	}
	ch := make(chan func())
	var wg sync.WaitGroup
	for range max(1, s.cfg.execParallel) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				j()
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()

	for _, p := range pods {
		info := podKinds[p.kind]
		for _, e := range p.execErrs {
			s.t.Errorf("%s: %s", p.name, e)
		}
		if info.gvisor {
			if !strings.Contains(strings.ToLower(p.kernel), "gvisor") {
				s.t.Errorf("%s (%s): kernel %q, want gVisor's", p.name, info.name, p.kernel)
			}
			if p.updateDenial != "" {
				wantDenial(s.t, "2.4", p.name+": an update past the memory limit", p.updateDenial,
					fmt.Sprintf(`isoguard: denied by rule untrusted.update-limits: resources.memory.limit %dMiB exceeds the limit %dMiB (tenant "%s")`, limitMB+1, limitMB, untrustedNS))
			}
		} else if p.kernel != s.hostKernel {
			s.t.Errorf("%s (%s): kernel %q, want the host's %q", p.name, info.name, p.kernel, s.hostKernel)
		}
		wantUID := "0"
		if info.gvisor {
			wantUID = strconv.Itoa(sandboxUID)
		}
		if p.uid != wantUID {
			s.t.Errorf("%s (%s): uid %q, want %s", p.name, info.name, p.uid, wantUID)
		}
	}
}

func (s *stressRun) updateCount() int {
	c := 0
	for _, p := range s.pods {
		c += p.updates
	}
	return c
}

func (s *stressRun) execCount() int {
	c := 0
	for _, p := range s.pods {
		c += p.execs
	}
	return c
}

func (s *stressRun) started() []*stressPod {
	var ps []*stressPod
	for _, p := range s.pods {
		if p.id != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// checkWrappers: exactly one wrapper process per isoguard pod that runs (a denied pod's
// wrapper has exited), and `isoguard ps` lists each of them.
func (s *stressRun) checkWrappers() {
	want := map[string]bool{}
	for _, p := range s.pods {
		if podKinds[p.kind].isoguard && p.id != "" {
			want[p.id] = true
		}
	}
	if ws := s.n.wrappersOfDaemon(); len(ws) != len(want) {
		s.t.Errorf("wrapper processes: %d, want %d (one per isoguard pod)", len(ws), len(want))
	}
	listed := map[string]bool{}
	for _, r := range s.n.ps(s.t) {
		listed[fmt.Sprint(r["id"])] = true
	}
	for id := range want {
		if !listed[id] {
			s.t.Errorf("isoguard ps does not list pod %s", id)
		}
	}
	if len(listed) != len(want) {
		s.t.Errorf("isoguard ps lists %d wrappers, want %d", len(listed), len(want))
	}
}

// removePod stops and removes a pod as kubelet does (StopPodSandbox, RemovePodSandbox).
func (s *stressRun) removePod(p *stressPod) {
	if p.id == "" {
		return
	}
	begin := time.Now()
	for _, args := range [][]string{{"stopp", p.id}, {"rmp", p.id}} {
		if _, errOut, err := s.crictl(args...); err != nil {
			p.rmErr = fmt.Sprintf("crictl %s: %v: %s", args[0], err, strings.TrimSpace(errOut))
			return
		}
	}
	p.rmLatency = time.Since(begin)
}

// auditFile is one file of the audit trail as read back.
type auditFile struct {
	path    string
	size    int64
	records int
}

// readAuditTrail reads every file of the trail (audit.log.N ... audit.log.1, audit.log:
// oldest first); every line must be one JSON record.
func (s *stressRun) readAuditTrail() ([]audit.Record, []auditFile) {
	t := s.t
	matches, _ := filepath.Glob(s.n.audit + ".*")
	var rotated []int
	for _, m := range matches {
		suffix := strings.TrimPrefix(m, s.n.audit+".")
		if suffix == "lock" {
			continue
		}
		i, err := strconv.Atoi(suffix)
		if err != nil {
			t.Errorf("unexpected file beside the audit trail: %s", m)
			continue
		}
		rotated = append(rotated, i)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(rotated)))
	for i, r := range rotated {
		if want := len(rotated) - i; r != want {
			t.Errorf("rotated audit files %v: want audit.log.1 to audit.log.%d without a gap", rotated, len(rotated))
			break
		}
	}
	paths := []string{}
	for _, r := range rotated {
		paths = append(paths, fmt.Sprintf("%s.%d", s.n.audit, r))
	}
	paths = append(paths, s.n.audit)
	var recs []audit.Record
	var files []auditFile
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			t.Fatalf("audit trail: %v", err)
		}
		st, _ := f.Stat()
		af := auditFile{path: path, size: st.Size()}
		if af.size > 1<<20 {
			t.Errorf("%s: %d bytes, past audit.maxSizeMB (1 MiB)", path, af.size)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		line := 0
		for sc.Scan() {
			line++
			var r audit.Record
			dec := json.NewDecoder(strings.NewReader(sc.Text()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&r); err != nil || dec.More() {
				t.Errorf("%s:%d: not one JSON record (%v): %q", path, line, err, sc.Text())
				continue
			}
			recs = append(recs, r)
			af.records++
		}
		if err := sc.Err(); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		f.Close()
		files = append(files, af)
	}
	return recs, files
}

// checkAudit reads the trail back and compares it with the decisions the run caused: per
// pod through isoguard the sandbox's start and create, the container's join and create,
// one record per exec; a pod denied at its start only its start. The plain handlers' pods
// have none. It returns the trail's files.
func (s *stressRun) checkAudit() []auditFile {
	t := s.t
	recs, files := s.readAuditTrail()
	if len(files)-1 < 2 {
		t.Errorf("the audit trail rotated %d times, want at least 2 (records %d)", len(files)-1, len(recs))
	}
	if len(files)-1 >= stressMaxBackups {
		t.Errorf("the audit trail rotated into all %d backups: records may have been dropped", stressMaxBackups)
	}

	owner := map[string]*stressPod{}
	byName := map[string]*stressPod{}
	for _, p := range s.pods {
		if p.id != "" {
			owner[p.id] = p
		}
		if p.ctrID != "" {
			owner[p.ctrID] = p
		}
		byName[p.name] = p
	}
	got := map[*stressPod][]audit.Record{}
	unexpected := 0
	for _, r := range recs {
		p := owner[r.ID]
		if p == nil && r.KubePod != "" && byName[r.KubePod] != nil && byName[r.KubePod].id == "" {
			p = byName[r.KubePod] // a pod denied at its start: crictl never saw its id
		}
		if p == nil {
			if unexpected++; unexpected <= 10 {
				t.Errorf("audit record of no pod of the run: %+v", r)
			}
			continue
		}
		got[p] = append(got[p], r)
	}

	wantTotal := 0
	for _, p := range s.pods {
		info := podKinds[p.kind]
		want := map[string]int{}
		switch {
		case !info.isoguard:
		case p.kind == deniedPod:
			want["start "+p.name] = 1
		default:
			want["start "+p.id] = 1
			want["create "+p.id] = 1
			want["join "+p.ctrID] = 1
			want["create "+p.ctrID] = 1
			if p.execs > 0 {
				want["exec "+p.ctrID] = p.execs
			}
			if p.updates > 0 {
				want["update "+p.ctrID] = p.updates
			}
		}
		have := map[string]int{}
		execIDs := map[string]bool{}
		pids := map[int]bool{}
		for _, r := range got[p] {
			id := r.ID
			if p.kind == deniedPod {
				id = p.name
			}
			have[r.Call+" "+id]++
			if r.Call == "exec" {
				if execIDs[r.ExecID] {
					t.Errorf("%s: two exec records of exec %s", p.name, r.ExecID)
				}
				execIDs[r.ExecID] = true
			}
			if r.Call != "join" {
				pids[r.Pid] = true
			}
			s.checkRecord(p, r)
		}
		for k, v := range want {
			wantTotal += v
			if have[k] != v {
				t.Errorf("%s (%s): %d audit records of %s, want %d", p.name, info.name, have[k], k, v)
			}
		}
		for k, v := range have {
			if _, ok := want[k]; !ok {
				t.Errorf("%s (%s): %d unexpected audit records of %s", p.name, info.name, v, k)
			}
		}
		if len(pids) > 1 {
			t.Errorf("%s: the pod's records come from %d processes, want its one wrapper daemon", p.name, len(pids))
		}
	}
	if len(recs) != wantTotal {
		t.Errorf("audit records: %d, want exactly %d (one per decision)", len(recs), wantTotal)
	}
	t.Logf("audit trail: %d records in %d files, as expected %d", len(recs), len(files), wantTotal)
	if t.Failed() {
		for _, f := range files {
			t.Logf("audit file %s: %d bytes, %d records", f.path, f.size, f.records)
		}
	}
	return files
}

// checkRecord checks a record's decision against the pod's kind.
func (s *stressRun) checkRecord(p *stressPod, r audit.Record) {
	t := s.t
	info := podKinds[p.kind]
	bad := func(why string) {
		b, _ := json.Marshal(r)
		t.Errorf("%s (%s): audit record %s: %s", p.name, info.name, b, why)
	}
	if r.Namespace != harness.CRINamespace || r.KubePod != p.name || r.KubeNamespace != info.ns || r.Tenant != info.ns || r.Mode != "enforce" || r.Error != "" {
		bad("wrong identity, mode or an error")
	}
	trusted := info.ns == trustedNS
	if r.Trusted != trusted {
		bad(fmt.Sprintf("trusted %v, want %v", r.Trusted, trusted))
	}
	deniedCall := (p.kind == deniedPod && r.Call == "start") || (p.kind == deniedCtr && r.Call == "create" && r.ID == p.ctrID)
	switch {
	case deniedCall:
		if r.Outcome != audit.OutcomeDenied || len(r.Denials) != 1 || r.Denials[0].Rule != "untrusted.hostpath" || !slices.Contains(r.Rules, "untrusted.hostpath") {
			bad("want denied by untrusted.hostpath alone")
		}
	case r.Call == "update" && !trusted:
		if r.Outcome != audit.OutcomeDenied || len(r.Denials) != 1 || r.Denials[0].Rule != "untrusted.update-limits" {
			bad("want denied by untrusted.update-limits alone")
		}
	case trusted:
		if r.Outcome != audit.OutcomeAllowed || len(r.Rules) != 0 {
			bad("want allowed unchanged")
		}
	case r.Outcome == audit.OutcomeDenied:
		bad("denied")
	case r.Call == "start" && !slices.Contains(r.Rules, "untrusted.isolation"):
		bad("an untrusted pod's start without untrusted.isolation")
	case r.Call == "exec" && !slices.Contains(r.Rules, "untrusted.exec-user"):
		bad("an untrusted exec without untrusted.exec-user")
	}
}

type stressTimes struct{ start, exec, remove, total time.Duration }

// percentile is the nearest-rank percentile q (0..1] of d.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(math.Ceil(q*float64(len(s))))-1]
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func (s *stressRun) report(tm stressTimes, files []auditFile, loadBefore string) {
	lat, rm := map[podKind][]time.Duration{}, map[podKind][]time.Duration{}
	byRound := map[podKind]map[int]time.Duration{}
	for _, p := range s.pods {
		if p.running() {
			lat[p.kind] = append(lat[p.kind], p.latency)
			if byRound[p.kind] == nil {
				byRound[p.kind] = map[int]time.Duration{}
			}
			byRound[p.kind][p.round] = p.latency
		}
		if p.id != "" && p.rmErr == "" {
			rm[p.kind] = append(rm[p.kind], p.rmLatency)
		}
	}
	// The ratio of the two pods of one round (launched one after the other) cancels the
	// load's drift over the run.
	paired := func(iso, plain podKind) (float64, int) {
		var rs []float64
		for r, d := range byRound[iso] {
			if pd, ok := byRound[plain][r]; ok {
				rs = append(rs, ratio(d, pd))
			}
		}
		if len(rs) == 0 {
			return math.NaN(), 0
		}
		sort.Float64s(rs)
		return rs[len(rs)/2], len(rs)
	}
	var b strings.Builder
	inFlight := func(n int) string {
		if n > 0 {
			return fmt.Sprintf("at most %d in flight", n)
		}
		return "all at once"
	}
	fmt.Fprintf(&b, "%d pods started concurrently (%s) on containerd 2.4.2's CRI plugin (stats_collect_period %s; task.state, shim.cleanup and shim.shutdown timeouts %s): %d through isoguard (%d trusted, %d untrusted, %d denied at RunPodSandbox, %d at StartContainer, %d trusted with host IPC and a host path), %d on the plain handlers. Then %d execs and %d updates (%d crictl processes at a time); stop and removal %s.\n\n",
		len(s.pods), inFlight(s.cfg.parallel), s.cfg.statsPeriod, s.cfg.stateTimeout, len(s.pods)-len(lat[plainRunc])-len(lat[plainRunsc]),
		len(lat[isoTrusted]), len(lat[isoUntrusted]), s.count(deniedPod), s.count(deniedCtr), len(lat[trustedPrivileged]),
		len(lat[plainRunc])+len(lat[plainRunsc]), s.execCount(), s.updateCount(), s.cfg.execParallel, inFlight(s.cfg.rmParallel))
	fmt.Fprintf(&b, "| start latency (runp + create + start) | pods | p50 | p99 | p50 ratio, isoguard / plain | p99 ratio | median of the per-round ratios | target (p50 ratio) |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range []struct {
		iso, plain podKind
		target     string
	}{{isoTrusted, plainRunc, "<= 1.05"}, {isoUntrusted, plainRunsc, "(measured)"}} {
		pi, pp := lat[c.iso], lat[c.plain]
		i50, i99, p50, p99 := percentile(pi, .5), percentile(pi, .99), percentile(pp, .5), percentile(pp, .99)
		pr, pn := paired(c.iso, c.plain)
		fmt.Fprintf(&b, "| %s | %d | %.1f s | %.1f s | | | | |\n", podKinds[c.plain].name, len(pp), p50.Seconds(), p99.Seconds())
		fmt.Fprintf(&b, "| %s | %d | %.1f s | %.1f s | **%.3f** | %.3f | %.3f (%d rounds) | %s |\n", podKinds[c.iso].name, len(pi), i50.Seconds(), i99.Seconds(), ratio(i50, p50), ratio(i99, p99), pr, pn, c.target)
	}
	fmt.Fprintf(&b, "\n| stop and remove (stopp + rmp) | pods | p50 | p99 |\n|---|---|---|---|\n")
	for _, k := range []podKind{plainRunc, isoTrusted, plainRunsc, isoUntrusted} {
		fmt.Fprintf(&b, "| %s | %d | %.1f s | %.1f s |\n", podKinds[k].name, len(rm[k]), percentile(rm[k], .5).Seconds(), percentile(rm[k], .99).Seconds())
	}
	var bytes int64
	recs := 0
	for _, f := range files {
		bytes += f.size
		recs += f.records
	}
	fmt.Fprintf(&b, "\n| wall time | |\n|---|---|\n| start (all pods) | %.0f s |\n| checks, execs and updates | %.0f s |\n| stop and remove (all pods) | %.0f s |\n| the whole test (containerd's start and every check included) | %.0f s |\n",
		tm.start.Seconds(), tm.exec.Seconds(), tm.remove.Seconds(), tm.total.Seconds())
	fmt.Fprintf(&b, "\nAudit trail: %d records (exactly one per decision), %d bytes in %d files (%d rotations at 1 MiB), every line valid JSON. Load average before the run: %s, after: %s.\n",
		recs, bytes, len(files), len(files)-1, loadBefore, loadAvg())
	s.t.Log("\n" + b.String())
	for _, k := range []podKind{plainRunc, isoTrusted, plainRunsc, isoUntrusted} {
		d := append([]time.Duration(nil), lat[k]...)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		var ss []string
		for _, x := range d {
			ss = append(ss, fmt.Sprintf("%.1f", x.Seconds()))
		}
		s.t.Logf("start latencies, %s (s): %s", podKinds[k].name, strings.Join(ss, " "))
	}
	if out := os.Getenv("ISOGUARD_STRESS_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			s.t.Error(err)
		}
	}
}

func (s *stressRun) count(k podKind) int {
	c := 0
	for _, p := range s.pods {
		if p.kind == k {
			c++
		}
	}
	return c
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// saveArtifacts copies containerd's log and every file of the audit trail to dir.
func saveArtifacts(t *testing.T, n *isoNode, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Error(err)
		return
	}
	files, _ := filepath.Glob(n.audit + "*")
	copies := map[string]string{n.LogPath: "containerd.log"}
	for _, f := range files {
		copies[f] = filepath.Base(f)
	}
	for from, to := range copies {
		b, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, to), b, 0o644)
		}
		if err != nil {
			t.Errorf("artifacts: %v", err)
		}
	}
	t.Logf("containerd's log and the audit trail: %s", dir)
}
