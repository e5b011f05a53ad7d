package harness

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// ShimSocketDir is where containerd's shims (and the wrapper) put their sockets.
const ShimSocketDir = "/run/containerd/s"

// Sockets lists the entries of ShimSocketDir now.
func Sockets() map[string]bool {
	names := map[string]bool{}
	entries, _ := os.ReadDir(ShimSocketDir)
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names
}

// deadSocketsSince lists the sockets in ShimSocketDir that were not there in before and on
// which nothing accepts connections: sockets whose server is gone and that nobody removed.
func deadSocketsSince(before map[string]bool) []string {
	var dead []string
	for name := range Sockets() {
		if before[name] {
			continue
		}
		p := filepath.Join(ShimSocketDir, name)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSocket == 0 {
			continue
		}
		if c, err := net.DialTimeout("unix", p, 100*time.Millisecond); err == nil {
			c.Close()
			continue
		}
		dead = append(dead, p)
	}
	slices.Sort(dead)
	return dead
}

// AssertNoDeadSockets waits up to within until no socket created since before is left in
// ShimSocketDir without a server, and reports an error listing them otherwise: the leak
// check for sockets (containerd runs the shim's `delete` asynchronously after a shim
// disconnects, so this waits). It removes what it reports, so one leak fails one test.
func AssertNoDeadSockets(t testing.TB, before map[string]bool, within time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		dead := deadSocketsSince(before)
		if len(dead) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("sockets left behind in %s with nothing serving them: %v", ShimSocketDir, dead)
			for _, p := range dead {
				os.Remove(p)
			}
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RuncShimDebugSocket is the debug socket a runc shim started with -debug serves for task
// id of namespace ns of d.
func RuncShimDebugSocket(d *Daemon, ns, id string) string {
	return runcShimSocket(d.Address, ns, id, true)
}

// runcShimSocket is the socket a runc shim derives for task id of namespace ns of the
// containerd at address (containerd's pkg/shim SocketAddress: sha256 of ADDRESS/NS/ID, or
// ADDRESS/NS/ID/debug for the debug socket, in ShimSocketDir).
func runcShimSocket(address, ns, id string, debug bool) string {
	p := filepath.Join(address, ns, id)
	if debug {
		p = filepath.Join(p, "debug")
	}
	return filepath.Join(ShimSocketDir, fmt.Sprintf("%x", sha256.Sum256([]byte(p))))
}
