package proc

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

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

// Matches reports whether pid is alive and is a process of binary for task id: its image
// is binary (base names compared case-insensitively) and its command line (commandLine)
// holds `-id ID` exactly, as on Linux. It guards kills against
// reused pids. Where the command line cannot be read at all (a process this one may query
// but not read), the image name alone decides.
func Matches(pid int, binary, id string) bool {
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
	if !strings.EqualFold(filepath.Base(windows.UTF16ToString(buf[:n])), filepath.Base(binary)) {
		return false
	}
	argv, err := commandLine(h, pid)
	if err != nil {
		return true
	}
	// argv[0] as written by the parent need not be the image path: the image was checked.
	argv[0] = binary
	return argvMatches(argv, binary, id)
}

// commandLine reads process pid's command line and splits it as the C runtime does:
// NtQueryInformationProcess ProcessCommandLineInformation (Windows 8.1 / Server 2012 R2 and
// later), else from the process's PEB (RTL_USER_PROCESS_PARAMETERS.CommandLine, read with
// ReadProcessMemory; what wine 8 supports).
func commandLine(h windows.Handle, pid int) ([]string, error) {
	line, err := commandLineQuery(h)
	if err != nil {
		if line, err = commandLinePEB(pid); err != nil {
			return nil, err
		}
	}
	argv, err := windows.DecomposeCommandLine(line)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty command line: %w", errors.ErrUnsupported)
	}
	return argv, nil
}

func commandLineQuery(h windows.Handle) (string, error) {
	var size uint32
	_ = windows.NtQueryInformationProcess(h, windows.ProcessCommandLineInformation, nil, 0, &size)
	if size == 0 || size > 1<<20 {
		return "", fmt.Errorf("command line size %d: %w", size, errors.ErrUnsupported)
	}
	buf := make([]byte, size)
	if err := windows.NtQueryInformationProcess(h, windows.ProcessCommandLineInformation, unsafe.Pointer(&buf[0]), size, &size); err != nil {
		return "", err
	}
	return (*windows.NTUnicodeString)(unsafe.Pointer(&buf[0])).String(), nil
}

func commandLinePEB(pid int) (string, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_INFORMATION|windows.PROCESS_VM_READ, false, uint32(pid))
	if err != nil {
		return "", err
	}
	defer windows.CloseHandle(h)
	var pbi windows.PROCESS_BASIC_INFORMATION
	var n uint32
	if err := windows.NtQueryInformationProcess(h, windows.ProcessBasicInformation, unsafe.Pointer(&pbi), uint32(unsafe.Sizeof(pbi)), &n); err != nil {
		return "", err
	}
	var peb windows.PEB
	if err := readMemory(h, uintptr(unsafe.Pointer(pbi.PebBaseAddress)), unsafe.Pointer(&peb), unsafe.Sizeof(peb)); err != nil {
		return "", err
	}
	var params windows.RTL_USER_PROCESS_PARAMETERS
	if err := readMemory(h, uintptr(unsafe.Pointer(peb.ProcessParameters)), unsafe.Pointer(&params), unsafe.Sizeof(params)); err != nil {
		return "", err
	}
	l := uintptr(params.CommandLine.Length)
	if l == 0 || l > 1<<16 {
		return "", fmt.Errorf("command line length %d: %w", l, errors.ErrUnsupported)
	}
	buf := make([]uint16, l/2)
	if err := readMemory(h, uintptr(unsafe.Pointer(params.CommandLine.Buffer)), unsafe.Pointer(&buf[0]), l); err != nil {
		return "", err
	}
	return windows.UTF16ToString(buf), nil
}

func readMemory(h windows.Handle, addr uintptr, dst unsafe.Pointer, size uintptr) error {
	var got uintptr
	if err := windows.ReadProcessMemory(h, addr, (*byte)(dst), size, &got); err != nil {
		return err
	}
	if got != size {
		return fmt.Errorf("read %d of %d bytes of process memory: %w", got, size, errors.ErrUnsupported)
	}
	return nil
}

// CanReplace: Windows cannot replace a process's image (no execve); `delete` runs
// the delegate's delete as a child and relays its answer.
const CanReplace = false

func Replace(string, []string) error { return errors.ErrUnsupported }

// Terminate ends pid. Windows has no SIGTERM for a console-less process: TerminateProcess,
// then wait up to grace for it to be gone.
func Terminate(pid int, grace time.Duration) error {
	h, err := windows.OpenProcess(windows.PROCESS_TERMINATE|windows.SYNCHRONIZE, false, uint32(pid))
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		return nil // no such process: already gone
	}
	if err != nil {
		// Access denied is not "gone": the process runs and this one may not end it.
		return fmt.Errorf("open process %d to terminate it: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	if err := windows.TerminateProcess(h, 1); err != nil {
		return err
	}
	_, _ = windows.WaitForSingleObject(h, uint32(grace.Milliseconds()))
	return nil
}
