//go:build !windows

package shim

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/containerd/log"

	"github.com/isoguard/isoguard/internal/bundle"
)

// openLogOutput opens the bundle's `log` fifo, which containerd reads and copies into its
// own log (core/runtime/v2/shim_unix.go openShimLog; the runc shim writes to the same fifo,
// which takes several writers). containerd holds it open read-write, so opening it for
// writing does not block while containerd runs; without a reader the daemon keeps logging
// to its stderr (the bundle's isoguard-shim.log).
func openLogOutput(ctx context.Context, _ Flags) io.Writer {
	dir, err := os.Getwd()
	if err != nil {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(dir, bundle.LogFifo), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		log.G(ctx).WithError(err).Debug("containerd log fifo not available; logging to " + bundle.DaemonLog)
		return nil
	}
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil
	}
	return f
}
