//go:build !linux

package harness

import (
	"testing"
	"time"
)

// StartTimeout bounds how long Containerd waits for containerd to boot.
var StartTimeout = 60 * time.Second

// Containerd needs Linux: it skips the test elsewhere.
func Containerd(t testing.TB, version string) *Daemon {
	t.Helper()
	return ContainerdWith(t, version, Options{})
}

// ContainerdWith needs Linux: it skips the test elsewhere.
func ContainerdWith(t testing.TB, version string, opts Options) *Daemon {
	t.Helper()
	t.Skip("private containerd daemons are implemented on Linux only")
	return nil
}

// StartupTime returns zero on this platform.
func (d *Daemon) StartupTime() time.Duration { return 0 }

// Stop is a no-op on this platform.
func (d *Daemon) Stop(t testing.TB) {}

// Restart is a no-op on this platform.
func (d *Daemon) Restart(t testing.TB) {}

// Start is a no-op on this platform.
func (d *Daemon) Start(t testing.TB) {}

// Running reports false on this platform.
func (d *Daemon) Running() bool { return false }

// Pid returns 0 on this platform.
func (d *Daemon) Pid() int { return 0 }
