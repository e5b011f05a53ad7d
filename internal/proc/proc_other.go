//go:build !windows

// Package proc is what the wrapper and the operator's tool need of processes: whether a
// recorded pid is still the process it was (a guard against reused pids), ending one, and
// starting the wrapper daemon detached.
package proc

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Detached makes the wrapper daemon its own session, so it outlives `start` and receives no
// signal meant for containerd's process group.
func Detached() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

// DiesWithParent makes a child process get SIGKILL when its parent dies (Linux's parent
// death signal): a delegate's `start` must not outlive a wrapper daemon killed while it
// waited for it, and go on to spawn a daemon nobody will clean up.
func DiesWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// Shims lists the live processes that are shim commands of binary for task id of
// namespace, started for the containerd at address (argv[0] names binary, and -namespace,
// -id and -address match whole). It finds a delegate whose pid nobody was told: the
// daemon its `start` spawned before it failed, or one that never answered Connect.
func Shims(binary, namespace, id, address string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(cmdline) == 0 || !Alive(pid) {
			continue
		}
		if shimArgvMatches(strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"), binary, namespace, id, address) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Matches reports whether pid is alive and is a shim process of binary for task id: its
// argv[0] names binary (base names compared) and its arguments hold `-id ID` exactly, the
// way containerd passes it (or -id=ID, --id ID). It guards kills against reused pids.
func Matches(pid int, binary, id string) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !Alive(pid) {
		return false
	}
	return argvMatches(strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"), binary, id)
}

// CanReplace: Replace works here.
const CanReplace = true

// Replace executes path with args in place of this process (execve: same pid,
// working directory, environment and file descriptors). It returns only on failure.
func Replace(path string, args []string) error {
	return syscall.Exec(path, append([]string{path}, args...), os.Environ())
}

// Terminate asks pid to exit (SIGTERM), then kills it (SIGKILL) after grace. It polls
// quickly at first: a daemon asked to stop is usually gone within a few milliseconds, and
// `delete` waits for it.
func Terminate(pid int, grace time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(grace)
	for wait := 500 * time.Microsecond; time.Now().Before(deadline); wait = min(2*wait, 10*time.Millisecond) {
		if !Alive(pid) {
			return nil
		}
		time.Sleep(wait)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Alive reports whether pid exists and has not exited (a zombie counts as exited).
func Alive(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(st, ')')
	return i > 0 && i+2 < len(st) && st[i+2] != 'Z'
}
