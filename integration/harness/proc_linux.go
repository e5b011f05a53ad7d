package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Processes lists all processes with a command line (not kernel threads, not zombies),
// except the calling process.
func Processes() []Process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var ps []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		p := Process{PID: pid, Cmdline: strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i >= 0 {
				if f := strings.Fields(string(st)[i+1:]); len(f) > 1 {
					if f[0] == "Z" {
						continue
					}
					p.PPID, _ = strconv.Atoi(f[1])
				}
			}
		}
		ps = append(ps, p)
	}
	return ps
}

// ProcessesMatching lists the processes (but the calling one) whose command line contains substr.
func ProcessesMatching(substr string) []Process {
	var out []Process
	for _, p := range Processes() {
		if strings.Contains(p.Cmdline, substr) {
			out = append(out, p)
		}
	}
	return out
}

// AssertNoProcesses waits up to within until no process's command line contains any of
// substrs, and reports an error listing the survivors otherwise. It returns whether none
// are left. Use it after each test as the leak check ("no leftover shim/delegate processes").
func AssertNoProcesses(t testing.TB, within time.Duration, substrs ...string) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var left []Process
		for _, p := range Processes() {
			for _, s := range substrs {
				if strings.Contains(p.Cmdline, s) {
					left = append(left, p)
					break
				}
			}
		}
		if len(left) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, p := range left {
				fmt.Fprintf(&b, "\n  %s", p)
			}
			t.Errorf("%d leftover processes matching %q after %v:%s", len(left), substrs, within, b.String())
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(st), ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(string(st)[i+1:]), "Z")
}
