package shim

import (
	"context"
	"runtime"
	"slices"
	"testing"
)

// TestGOMAXPROCS: the daemon runs on one P unless the environment names another value;
// containerd's GOMAXPROCS=2 for every shim is not passed on to it.
func TestGOMAXPROCS(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	t.Chdir(t.TempDir())
	runtime.GOMAXPROCS(3)
	t.Setenv("GOMAXPROCS", "")
	setupDaemon(context.Background(), testFlags())
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("no GOMAXPROCS: %d Ps, want 1", n)
	}
	// The Go runtime applied the environment's value at start; the daemon keeps it.
	runtime.GOMAXPROCS(3)
	t.Setenv("GOMAXPROCS", "3")
	setupDaemon(context.Background(), testFlags())
	if n := runtime.GOMAXPROCS(0); n != 3 {
		t.Fatalf("GOMAXPROCS=3: %d Ps, want 3", n)
	}
	env := daemonEnv([]string{"PATH=/bin", "GOMAXPROCS=2", "TTRPC_ADDRESS=/x"})
	if !slices.Equal(env, []string{"PATH=/bin", "TTRPC_ADDRESS=/x"}) {
		t.Fatalf("containerd's GOMAXPROCS=2 reaches the daemon: %q", env)
	}
	if env := daemonEnv([]string{"GOMAXPROCS=4"}); !slices.Equal(env, []string{"GOMAXPROCS=4"}) {
		t.Fatalf("an operator's GOMAXPROCS is dropped: %q", env)
	}
}
