//go:build !windows

// Package transport is where the wrapper listens and how it dials a shim: a root-only unix
// socket beside containerd's shims on Linux (transport_other.go), an admin-only named pipe
// on Windows (transport_windows.go).
package transport

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
)

// defaultSocketDir is where containerd's shims put their sockets when containerd names no
// socket directory (containerd defaults.DefaultStateDir + "/s").
const defaultSocketDir = "/run/containerd/s"

// WrapperAddress is the wrapper's own socket: in the same directory as containerd's shims,
// named like containerd's (a sha256 of address/namespace/id) but with an "isoguard" salt,
// so it can never be the delegate's address.
func WrapperAddress(containerdAddress, namespace, id, socketDir string) string {
	if socketDir == "" {
		socketDir = defaultSocketDir
	}
	sum := sha256.Sum256([]byte("isoguard\x00" + filepath.Join(containerdAddress, namespace, id)))
	return fmt.Sprintf("unix://%s/%x", socketDir, sum)
}

func socketPath(address string) (string, error) {
	path, ok := strings.CutPrefix(address, "unix://")
	if !ok && strings.Contains(address, "://") {
		return "", fmt.Errorf("address %q is not a unix socket: %w", address, errdefs.ErrInvalidArgument)
	}
	if path == "" {
		return "", fmt.Errorf("empty socket address: %w", errdefs.ErrInvalidArgument)
	}
	return path, nil
}

// listen creates the wrapper's socket, owner-only. A stale socket nobody answers on is
// replaced; a live one is errdefs.ErrAlreadyExists.
func Listen(address string) (net.Listener, error) {
	path, err := socketPath(address)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		if answers(path, time.Second) {
			return nil, fmt.Errorf("socket %s is in use by another shim: %w", path, errdefs.ErrAlreadyExists)
		}
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return nil, err
		}
		if l, err = net.Listen("unix", path); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// dial connects to a shim address (unix://path, a plain path, or @abstract).
func Dial(address string, timeout time.Duration) (net.Conn, error) {
	path, err := socketPath(address)
	if err != nil {
		return nil, err
	}
	return net.DialTimeout("unix", path, timeout)
}

// RemoveAddress removes a socket file left behind.
func RemoveAddress(address string) error {
	path, err := socketPath(address)
	if err != nil || strings.HasPrefix(path, "@") {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveDeadSocket removes the unix socket at address if it is one and nothing accepts
// connections on it any more (a live listener is left alone).
func RemoveDeadSocket(address string) error {
	path, err := socketPath(address)
	if err != nil || strings.HasPrefix(path, "@") {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s is not a socket; left alone", path)
	}
	if answers(path, 100*time.Millisecond) {
		return nil // still served
	}
	return RemoveAddress(address)
}

// answers reports whether something accepts connections on the unix socket at path.
func answers(path string, timeout time.Duration) bool {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// ServerOptions: like containerd's shims, only peers with the wrapper's own uid may talk
// to it (ttrpc's SO_PEERCRED check).
func ServerOptions() []ttrpc.ServerOpt {
	return []ttrpc.ServerOpt{ttrpc.WithServerHandshaker(Handshaker())}
}

// Handshaker is ServerOptions' check of every connection (nil: none), for a server that
// adds its own handshake to it.
func Handshaker() ttrpc.Handshaker { return ttrpc.UnixSocketRequireSameUser() }
