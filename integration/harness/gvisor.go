package harness

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var gvisorTestBin = sync.OnceValues(func() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	// Cached: the binaries are built by scripts/deps.sh linux; the script only prints
	// their directory then (~0.1 s).
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "gvisor.sh"), "test")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/gvisor.sh test: %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
})

// GVisorTestBin is the directory of gVisor's TEST build (scripts/gvisor.sh test): the
// containerd shim (containerd-shim-runsc-v1, with the test-only patch for machines without
// CAP_SYS_RESOURCE) and runsc.
func GVisorTestBin(t testing.TB) string {
	t.Helper()
	dir, err := gvisorTestBin()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
