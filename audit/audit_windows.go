package audit

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// DefaultPath is the audit file on Windows: %ProgramData%\isoguard\audit\audit.log.
var DefaultPath = func() string {
	pd := os.Getenv("ProgramData")
	if pd == "" {
		pd = `C:\ProgramData`
	}
	return filepath.Join(pd, "isoguard", "audit", "audit.log")
}()

// DirSDDL gives SYSTEM and Administrators full control of the audit directory and its
// files, and nobody else access, with no inheritance from ProgramData (whose default ACL
// lets Users read): tenants must not reach the trail (threats T15).
const DirSDDL = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	sd, err := windows.SecurityDescriptorFromString(DirSDDL)
	if err != nil {
		return err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	return windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	ol := new(windows.Overlapped)
	h := windows.Handle(f.Fd())
	if err := windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, ol); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = windows.UnlockFileEx(h, 0, 1, 0, ol)
		f.Close()
	}, nil
}
