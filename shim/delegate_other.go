//go:build !windows

package shim

// DefaultDelegateName is the delegate looked up on PATH on Linux: containerd's runc shim.
const DefaultDelegateName = "containerd-shim-runc-v2"

func defaultDelegate(Flags) (string, error) {
	return lookPath(DefaultDelegateName)
}
