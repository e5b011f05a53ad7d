//go:build !windows

package shim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// detached makes the wrapper daemon its own session, so it outlives `start` and receives no
// signal meant for containerd's process group.
func detached() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

// processMatches reports whether pid is alive and its command line names binary's base name
// and the id. It guards kills against reused pids.
func processMatches(pid int, binary, id string) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	if !alive(pid) {
		return false
	}
	return bytes.Contains(cmdline, []byte(filepath.Base(binary))) && bytes.Contains(cmdline, []byte(id))
}

// canReplaceProcess: replaceProcess works here.
const canReplaceProcess = true

// replaceProcess executes path with args in place of this process (execve: same pid,
// working directory, environment and file descriptors). It returns only on failure.
func replaceProcess(path string, args []string) error {
	return syscall.Exec(path, append([]string{path}, args...), os.Environ())
}

// terminate asks pid to exit (SIGTERM), then kills it (SIGKILL) after grace. It polls
// quickly at first: a daemon asked to stop is usually gone within a few milliseconds, and
// `delete` waits for it.
func terminate(pid int, grace time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(grace)
	for wait := 500 * time.Microsecond; time.Now().Before(deadline); wait = min(2*wait, 10*time.Millisecond) {
		if !alive(pid) {
			return nil
		}
		time.Sleep(wait)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// alive reports whether pid exists and has not exited (a zombie counts as exited).
func alive(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(st, ')')
	return i > 0 && i+2 < len(st) && st[i+2] != 'Z'
}
