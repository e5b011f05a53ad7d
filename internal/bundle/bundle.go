// Package bundle reads and writes the files of a task bundle, the directory containerd
// creates for every task (<state>/io.containerd.runtime.v2.task/<namespace>/<id>): the OCI
// spec config.json, the files containerd restores a shim from (address, shim.pid,
// bootstrap.json) and isoguard's own record of a wrapper instance. It holds no policy: the
// record carries the enforcer's pins as opaque JSON.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// Files of a bundle.
const (
	// SpecFile is the OCI spec containerd writes and the delegate reads at Create.
	SpecFile = "config.json"
	// AddressFile, PidFile and BootstrapFile are what containerd restores a shim's
	// connection from after a restart: `address` (1.x and 2.x) and `bootstrap.json` (2.x,
	// preferred), written by the shim's start; shim.pid names the shim process.
	AddressFile   = "address"
	PidFile       = "shim.pid"
	BootstrapFile = "bootstrap.json"
	// LogFifo is the fifo containerd reads a shim's log from (Linux).
	LogFifo = "log"
	// DaemonLog takes the wrapper daemon's stderr (panics, and logs when containerd's log
	// fifo is not available), like runhcs's panic.log.
	DaemonLog = "isoguard-shim.log"
	// JoinedFile marks a workload container whose join of its pod is decided (its `start`
	// ran the join checks): it holds the pod sandbox's id.
	JoinedFile = "isoguard-joined"
)

// WriteJoined marks bundle's container as joined to pod sandbox sandboxID.
func WriteJoined(bundle, sandboxID string) error {
	return WriteFileAtomic(filepath.Join(bundle, JoinedFile), []byte(sandboxID), 0o600)
}

// Joined reports whether bundle's container is marked as joined to pod sandbox sandboxID.
func Joined(bundle, sandboxID string) bool {
	b, err := os.ReadFile(filepath.Join(bundle, JoinedFile))
	return err == nil && string(b) == sandboxID
}

// Sibling is the bundle of task id next to bundle (a pod's sandbox, or another task of the
// wrapper's namespace): containerd keeps every task bundle of a namespace in one directory,
// the layout the runc shim relies on too (cmd/containerd-shim-runc-v2/manager Stop).
func Sibling(bundle, id string) (string, error) {
	if err := CheckPathElement("id", id); err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(filepath.Clean(bundle)), id), nil
}

// CheckPathElement rejects values that are used as one element of a file path (ids,
// namespaces, sandbox ids from annotations) but could name another directory.
func CheckPathElement(what, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%s is empty: %w", what, errdefs.ErrInvalidArgument)
	case v == "." || v == "..":
		return fmt.Errorf("%s %q is not a valid identifier: %w", what, v, errdefs.ErrInvalidArgument)
	case strings.ContainsAny(v, `/\:`+"\x00"):
		return fmt.Errorf("%s %q contains a path separator: %w", what, v, errdefs.ErrInvalidArgument)
	case len(v) > 255:
		return fmt.Errorf("%s is %d bytes long (at most 255): %w", what, len(v), errdefs.ErrInvalidArgument)
	}
	return nil
}

// WriteRestoreFiles writes the files containerd restores a shim from, all naming the
// shim at address with process pid: `address` (containerd 1.x), `shim.pid` and
// `bootstrap.json` (2.x; version = the task API version the shim answered, over ttrpc).
func WriteRestoreFiles(bundle, address string, pid, version int) error {
	if err := WriteFileAtomic(filepath.Join(bundle, AddressFile), []byte(address), 0o600); err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(bundle, PidFile), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		return err
	}
	bj, err := json.Marshal(bootstrapJSON{Address: address, Protocol: "ttrpc", Version: version})
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(bundle, BootstrapFile), bj, 0o644)
}

// bootstrapJSON is containerd 2.x's bootstrap.json (core/runtime/v2/binary.go writeBootstrapParams).
type bootstrapJSON struct {
	Address  string `json:"address"`
	Protocol string `json:"protocol"`
	Version  int    `json:"version"`
}

// ReadPid reads a pid file such as shim.pid (0 when there is none or it is not a number).
func ReadPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// WriteFileAtomic replaces path with data through a temporary file and a rename in the same
// directory, so a reader (containerd restoring, a concurrent `start` or `delete`) sees the
// old or the new content, never a part. It does not fsync: everything it writes lives in a
// task bundle under containerd's state directory and names processes that a crash of the
// machine ends anyway (Linux keeps that directory on tmpfs, /run/containerd; containerd
// cleans up every bundle of a dead shim at boot). Syncing cost 0.2-5 ms per file on the
// start path here (docs/benchmarks.md).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return replaceFile(tmp.Name(), path)
}
