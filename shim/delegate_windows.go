package shim

import (
	"os"
	"path/filepath"
)

// DefaultDelegateName is hcsshim's shim, looked up beside containerd first.
const DefaultDelegateName = "containerd-shim-runhcs-v1.exe"

// defaultDelegate finds runhcs beside containerd (the folder of -publish-binary, where the
// containerd release zip and hcsshim's install put it), then on PATH.
func defaultDelegate(f Flags) (string, error) {
	if f.PublishBinary != "" {
		p := filepath.Join(filepath.Dir(f.PublishBinary), DefaultDelegateName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return lookPath(DefaultDelegateName)
}
