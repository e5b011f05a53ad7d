package shim

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/containerd/log"
)

const (
	// freeMemoryInterval: how often the idle daemon returns freed memory to the OS
	// (containerd's shims: every 30 s; a forced collection of this small heap costs ~1 ms).
	freeMemoryInterval = 10 * time.Second
	firstFreeMemory    = time.Second
)

// setupDaemon tunes the long-running daemon like containerd's shims (pkg/shim/shim.go
// setRuntime) and points its logs at containerd.
func setupDaemon(ctx context.Context, f Flags) {
	debug.SetGCPercent(40)
	// A relay does little work per call but hands every call between goroutines several
	// times; on one P those hand-offs need no wake-up of another OS thread, and the daemon
	// keeps fewer threads and per-P caches (smaller RSS). A GOMAXPROCS in the environment
	// wins, as with containerd's runc shim; `start` drops the GOMAXPROCS=2 containerd puts
	// into every shim's environment (daemonEnv), so only an operator's choice arrives here.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	if w := openLogOutput(ctx, f); w != nil {
		log.L.Logger.SetOutput(w)
	}
}

// freeMemory gives start-up's garbage (policy, spec, delegate start) back to the OS once
// containerd has created and started the task -- a forced collection right away would
// compete with containerd's Create for the CPU -- and then keeps the daemon small like
// containerd's shims do (pkg/shim/shim.go setRuntime).
func freeMemory() {
	time.Sleep(firstFreeMemory)
	for {
		debug.FreeOSMemory()
		time.Sleep(freeMemoryInterval)
	}
}
