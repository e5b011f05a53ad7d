package proc

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/windows"
)

// Detached starts the wrapper daemon without a console, in its own process group.
func Detached() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP | windows.DETACHED_PROCESS}
}

// DiesWithParent: Windows has no parent death signal; the delegate's start runs as before.
func DiesWithParent() *syscall.SysProcAttr { return nil }

// Shims finds nothing on Windows, which has no portable command line to read: a delegate
// whose pid is unknown is asked for it (its Connect answer) instead.
func Shims(string, string, string, string) []int { return nil }

// Matches reports whether pid is alive and its image is binary (base names compared
// case-insensitively). Windows has no portable command line to read, so the image name
// alone guards kills against reused pids; id is not checked.
func Matches(pid int, binary, _ string) bool {
	if pid <= 0 {
		return false
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION|windows.SYNCHRONIZE, false, uint32(pid))
	if err != nil {
		return false
	}
	defer windows.CloseHandle(h)
	if ev, err := windows.WaitForSingleObject(h, 0); err == nil && ev == windows.WAIT_OBJECT_0 {
		return false // exited
	}
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &n); err != nil {
		return false
	}
	return strings.EqualFold(filepath.Base(windows.UTF16ToString(buf[:n])), filepath.Base(binary))
}

// CanReplace: Windows cannot replace a process's image (no execve); `delete` runs
// the delegate's delete as a child and relays its answer.
const CanReplace = false

func Replace(string, []string) error { return errors.ErrUnsupported }

// Terminate ends pid. Windows has no SIGTERM for a console-less process: TerminateProcess,
// then wait up to grace for it to be gone.
func Terminate(pid int, grace time.Duration) error {
	h, err := windows.OpenProcess(windows.PROCESS_TERMINATE|windows.SYNCHRONIZE, false, uint32(pid))
	if err != nil {
		return nil // already gone
	}
	defer windows.CloseHandle(h)
	if err := windows.TerminateProcess(h, 1); err != nil {
		return err
	}
	_, _ = windows.WaitForSingleObject(h, uint32(grace.Milliseconds()))
	return nil
}
