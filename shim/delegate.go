package shim

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
)

// findDelegate resolves the delegate shim binary: the configured path if any, else the OS
// default (defaultDelegate in delegate_<os>.go). The wrapper never delegates to itself.
func findDelegate(configured string, f Flags) (string, error) {
	var (
		path string
		err  error
	)
	if configured != "" {
		if !filepath.IsAbs(configured) {
			return "", fmt.Errorf("delegate path %q in the node configuration is not absolute: %w", configured, errdefs.ErrInvalidArgument)
		}
		path = configured
	} else if path, err = defaultDelegate(f); err != nil {
		return "", err
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("delegate shim %s: %w: %w", path, err, errdefs.ErrNotFound)
	}
	if st.IsDir() {
		return "", fmt.Errorf("delegate shim %s is a directory: %w", path, errdefs.ErrInvalidArgument)
	}
	if self, err := os.Executable(); err == nil && sameFile(self, path) {
		return "", fmt.Errorf("delegate shim %s is isoguard itself: configure the real shim (containerd-shim-runhcs-v1 or containerd-shim-runc-v2): %w", path, errdefs.ErrInvalidArgument)
	}
	return path, nil
}

func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(sa, sb)
}

// lookPathExcludingSelf finds name on PATH like exec.LookPath.
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("delegate shim %s not found on PATH (%s); set delegate.path in the node configuration: %w",
			name, strings.TrimSpace(os.Getenv("PATH")), errdefs.ErrNotFound)
	}
	return filepath.Abs(p)
}
