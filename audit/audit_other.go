//go:build !windows

package audit

import (
	"os"
	"syscall"
)

// DefaultPath is the audit file on Linux.
const DefaultPath = "/var/log/isoguard/audit.log"

// ensureDir creates the audit directory readable by root only: tenants must not reach it
// (threats T15).
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return nil
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
