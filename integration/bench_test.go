//go:build integration && linux

package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/isoguard/isoguard/integration/harness"
)

// TestBenchmarkReport measures isoguard against the same delegate used directly, in one run
// on one containerd 2.4.2 (the method is in docs/benchmarks.md). It runs only with
// ISOGUARD_BENCH=1 (`make bench`) and writes a Markdown report to ISOGUARD_BENCH_OUT.
func TestBenchmarkReport(t *testing.T) {
	if os.Getenv("ISOGUARD_BENCH") != "1" {
		t.Skip("set ISOGUARD_BENCH=1 (make bench)")
	}
	rounds := envInt("ISOGUARD_BENCH_ROUNDS", 30)
	calls := envInt("ISOGUARD_BENCH_CALLS", 3000)
	w := startWrapperDaemon(t, "2.4", "")
	var report strings.Builder
	fmt.Fprintf(&report, "| measure | direct (runc shim) | through isoguard | ratio / added | target |\n|---|---|---|---|---|\n")

	// 1. End to end: ctr run --rm, alternating so drift hits both sides alike.
	var direct, wrapped []time.Duration
	var directIDs, wrappedIDs []string
	for i := range rounds {
		for _, viaWrapper := range []bool{i%2 == 0, i%2 != 0} {
			id := fmt.Sprintf("e2e-%d-%v", i, viaWrapper)
			if viaWrapper {
				wrappedIDs = append(wrappedIDs, id)
			} else {
				directIDs = append(directIDs, id)
			}
			args := []string{"run", "--rm"}
			if viaWrapper {
				args = append(args, "--runtime", w.shim)
			}
			start := time.Now()
			out := w.MustCtr(t, append(args, harness.ImageRef, id, harness.ImageTool, "hello")...)
			el := time.Since(start)
			if strings.TrimSpace(out) != "hello from isoguard" {
				t.Fatalf("run %s: %q", id, out)
			}
			if viaWrapper {
				wrapped = append(wrapped, el)
			} else {
				direct = append(direct, el)
			}
		}
	}
	md, mw := median(direct), median(wrapped)
	fmt.Fprintf(&report, "| `ctr run --rm` (median of %d) | %v | %v | %.3f | <= 1.05 |\n", rounds, ms(md), ms(mw), float64(mw)/float64(md))
	// Where the difference is: the same runs, split into phases by containerd's own log.
	logs := w.Daemon.Logs()
	pd, pw := logPhases(t, logs, directIDs), logPhases(t, logs, wrappedIDs)
	for _, p := range shimPhases {
		if len(pd[p.name]) == 0 || len(pw[p.name]) == 0 {
			t.Fatalf("phase %q not found in containerd's log (direct: %d runs, isoguard: %d runs)", p.name, len(pd[p.name]), len(pw[p.name]))
		}
		a, b := median(pd[p.name]), median(pw[p.name])
		fmt.Fprintf(&report, "| &nbsp;&nbsp;%s (median) | %v | %v | %+.1f ms | (measured) |\n", p.name, ms(a), ms(b), float64(b-a)/1e6)
	}

	// 2. Start latency: ctr run -d (shim start + Create + Start).
	direct, wrapped = nil, nil
	for i := range rounds / 2 {
		for _, viaWrapper := range []bool{i%2 == 0, i%2 != 0} {
			id := fmt.Sprintf("start-%d-%v", i, viaWrapper)
			args := []string{"run", "-d"}
			if viaWrapper {
				args = append(args, "--runtime", w.shim)
			}
			start := time.Now()
			w.MustCtr(t, append(args, harness.ImageRef, id, harness.ImageTool, "sleep", "300")...)
			el := time.Since(start)
			if viaWrapper {
				wrapped = append(wrapped, el)
			} else {
				direct = append(direct, el)
			}
			w.MustCtr(t, "task", "kill", "-s", "SIGKILL", id)
			deleteTask(t, w.Daemon, id)
			w.MustCtr(t, "container", "delete", id)
		}
	}
	md, mw = median(direct), median(wrapped)
	fmt.Fprintf(&report, "| start: `ctr run -d` (median of %d) | %v | %v | +%v | (measured) |\n", rounds/2, ms(md), ms(mw), ms(mw-md))

	// 3. Memory: resident set of the wrapper daemon vs the delegate shim with one running
	// container, once settled after start.
	w.MustCtr(t, "run", "-d", "--runtime", w.shim, harness.ImageRef, "bench-bg", harness.ImageTool, "sleep", "600")
	st := w.record(t, "bench-bg")
	time.Sleep(2 * time.Second)
	rw, rd := rssKB(t, st.Pid), rssKB(t, st.Delegate.Pid)
	fmt.Fprintf(&report, "| RSS with one running container | %d KiB | %d KiB | %.2f | <= 0.5 |\n", rd, rw, float64(rw)/float64(rd))

	// 4. A cheap call (State) through the wrapper vs directly to the delegate, and a bare
	// ttrpc round trip to another process on the same machine.
	wc := ttrpcClient(t, st.Address)
	dc := ttrpcClient(t, st.Delegate.Address)
	stateVia := func(c *ttrpc.Client, service string) time.Duration {
		var resp taskv2.StateResponse
		start := time.Now()
		for range calls {
			if err := c.Call(context.Background(), service, "State", &taskv2.StateRequest{ID: "bench-bg"}, &resp); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start) / time.Duration(calls)
	}
	bare := bareRoundTrip(t, calls)
	var sd, sw []time.Duration
	for range 5 {
		sd = append(sd, stateVia(dc, "containerd.task.v3.Task"))
		sw = append(sw, stateVia(wc, "containerd.task.v2.Task"))
	}
	d, wv := median(sd), median(sw)
	fmt.Fprintf(&report, "| State call (median of 5 x %d) | %v | %v | +%v = %.2f bare round trips (bare: %v) | <= 1 bare round trip |\n",
		calls, us(d), us(wv), us(wv-d), float64(wv-d)/float64(bare), us(bare))

	// 5. Memory again after that load, once the daemon's periodic return of freed memory
	// (every 10 s) has run.
	time.Sleep(11 * time.Second)
	rw, rd = rssKB(t, st.Pid), rssKB(t, st.Delegate.Pid)
	fmt.Fprintf(&report, "| RSS after %d State calls each way, 11 s later | %d KiB | %d KiB | %.2f | (measured) |\n", 5*calls, rd, rw, float64(rw)/float64(rd))

	w.MustCtr(t, "task", "kill", "-s", "SIGKILL", "bench-bg")
	deleteTask(t, w.Daemon, "bench-bg")
	w.MustCtr(t, "container", "delete", "bench-bg")

	t.Logf("\n%s", report.String())
	if out := os.Getenv("ISOGUARD_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// shimPhases splits a `ctr run --rm` by containerd's debug log (core/runtime/v2 and
// plugins/services/tasks of containerd 2.4): the shim's start (from "creating task" to
// "connecting to shim", which containerd logs once start answered), the task's life (to
// "shim disconnected", after Shutdown) and the shim's `delete` that containerd runs then
// ("cleaning up dead shim" to "warnings while cleaning up dead shim", logged when that
// delete wrote to stderr, as every runc shim run at debug level does).
var shimPhases = []struct{ name, from, to string }{
	{"shim start", "creating task", "connecting to shim"},
	{"task life (create .. shutdown)", "connecting to shim", "shim disconnected"},
	{"shim delete after disconnect", "cleaning up dead shim", "warnings while cleaning up dead shim"},
}

// logPhases returns, per phase of shimPhases, its duration for each of ids that has both
// ends in containerd's log.
func logPhases(t *testing.T, logs string, ids []string) map[string][]time.Duration {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	// at[id][message] = first time containerd logged it for that task.
	at := map[string]map[string]time.Time{}
	for _, line := range strings.Split(logs, "\n") {
		ts, msg, id, ok := parseLogLine(line)
		if !ok || !want[id] {
			continue
		}
		if at[id] == nil {
			at[id] = map[string]time.Time{}
		}
		if _, seen := at[id][msg]; !seen {
			at[id][msg] = ts
		}
	}
	out := map[string][]time.Duration{}
	for _, id := range ids {
		for _, p := range shimPhases {
			from, ok1 := at[id][p.from]
			to, ok2 := at[id][p.to]
			if ok1 && ok2 && !to.Before(from) {
				out[p.name] = append(out[p.name], to.Sub(from))
			}
		}
	}
	return out
}

// parseLogLine reads containerd's logrus text format: time="..." level=... msg="..." id=...
// ("connecting to shim ID" carries the id in the message).
func parseLogLine(line string) (time.Time, string, string, bool) {
	line = " " + line // every key, the first too, follows a space
	field := func(key string) string {
		i := strings.Index(line, " "+key+"=")
		if i < 0 {
			return ""
		}
		v := line[i+len(key)+2:]
		if strings.HasPrefix(v, `"`) {
			if u, err := strconv.QuotedPrefix(v); err == nil {
				s, _ := strconv.Unquote(u)
				return s
			}
			return ""
		}
		if j := strings.IndexByte(v, ' '); j >= 0 {
			v = v[:j]
		}
		return v
	}
	ts, err := time.Parse(time.RFC3339Nano, field("time"))
	if err != nil {
		return time.Time{}, "", "", false
	}
	msg, id := field("msg"), field("id")
	if rest, ok := strings.CutPrefix(msg, "connecting to shim "); ok {
		msg, id = "connecting to shim", rest
	}
	return ts, msg, id, msg != "" && id != ""
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }

func ttrpcClient(t *testing.T, address string) *ttrpc.Client {
	t.Helper()
	conn, err := net.Dial("unix", strings.TrimPrefix(address, "unix://"))
	if err != nil {
		t.Fatal(err)
	}
	c := ttrpc.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c
}

// bareRoundTrip is the cost of one ttrpc call to a server in another process that does
// nothing, over a unix socket on this machine: the unit the wrapper's added latency (one
// more process on the path) is measured in.
func bareRoundTrip(t *testing.T, calls int) time.Duration {
	sock := filepath.Join(t.TempDir(), "echo.sock")
	cmd := exec.Command(harness.BuildBinary(t, "./integration/cmd/ttrpc-echo"), sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("ttrpc-echo: %v", err)
	}
	c := ttrpcClient(t, "unix://"+sock)
	var runs []time.Duration
	for range 5 {
		start := time.Now()
		for range calls {
			if err := c.Call(context.Background(), "bench.Echo", "Echo", &emptypb.Empty{}, &emptypb.Empty{}); err != nil {
				t.Fatal(err)
			}
		}
		runs = append(runs, time.Since(start)/time.Duration(calls))
	}
	return median(runs)
}

func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}

// The phase split reads containerd 2.4's log lines as they are (lines copied from a run).
func TestBenchLogPhases(t *testing.T) {
	logs := strings.Join([]string{
		`time="2026-11-26T19:10:33.913127171Z" level=debug msg="creating task" id=ph-1 runtime=io.containerd.runc.v2`,
		`time="2026-11-26T19:10:33.931052283Z" level=info msg="connecting to shim ph-1" address="unix:///run/containerd/s/ee07" namespace=ig-f0eb5346 protocol=ttrpc version=3`,
		`time="2026-11-26T19:10:34.012920855Z" level=info msg="shim disconnected" id=ph-1 namespace=ig-f0eb5346`,
		`time="2026-11-26T19:10:34.013004554Z" level=info msg="cleaning up dead shim" id=ph-1 namespace=ig-f0eb5346`,
		`time="2026-11-26T19:10:34.029301768Z" level=warning msg="warnings while cleaning up dead shim" id=ph-1 namespace=ig-f0eb5346 warnings="time=\"2026-11-26T19:10:34Z\" level=debug msg=\"starting signal loop\" id=other\n"`,
		`time="2026-11-26T19:10:34.030000000Z" level=debug msg="creating task" id=ph-2 runtime=x`,
		`not a log line`,
	}, "\n")
	got := logPhases(t, logs, []string{"ph-1"})
	want := map[string]time.Duration{
		"shim start":                     17925112 * time.Nanosecond,
		"task life (create .. shutdown)": 81868572 * time.Nanosecond,
		"shim delete after disconnect":   16297214 * time.Nanosecond,
	}
	for name, w := range want {
		if len(got[name]) != 1 || got[name][0] != w {
			t.Errorf("%s: %v, want [%v]", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("phases %v, want only %v (ph-2 has no end)", got, want)
	}
}
