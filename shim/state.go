package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"

	"github.com/isoguard/isoguard/policy"
)

// StateFile is the file, in the bundle of a sandbox or standalone container, where the
// wrapper records the instance it started. A workload container of a pod may only join a
// pod whose sandbox bundle holds this record (threats T4): the record is the proof that
// this wrapper created the pod.
const StateFile = "isoguard-state.json"

const stateVersion = 1

// State is the wrapper's record of one wrapper instance (one pod or standalone container).
type State struct {
	Version   int    `json:"version"`
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	// Sandbox is true when the instance was started for a CRI pod sandbox.
	Sandbox bool `json:"sandbox"`
	// Address is the wrapper's own ttrpc address, the one containerd was given.
	Address string `json:"address"`
	// Pid of the wrapper daemon.
	Pid int `json:"pid"`
	// Delegate is the shim the wrapper started and forwards to.
	Delegate DelegateState `json:"delegate"`
	// Pins are decisions fixed when the pod was created (tenant, isolation) that every
	// later container of the pod must match. Written by the start hook.
	Pins *policy.Pins `json:"pins,omitempty"`
}

// DelegateState is what the wrapper knows about its delegate.
type DelegateState struct {
	Path        string      `json:"path"`
	Address     string      `json:"address"`
	Version     int         `json:"version"` // task API version the delegate answered (2 or 3)
	Pid         int         `json:"pid"`
	StdinFormat StdinFormat `json:"stdinFormat"`
}

// writeState writes the record atomically (temp file + rename in the same directory).
func writeState(bundle string, st *State) error {
	st.Version = stateVersion
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(bundle, StateFile), data, 0o600)
}

// readState reads a record. A missing record is errdefs.ErrNotFound.
func readState(bundle string) (*State, error) {
	path := filepath.Join(bundle, StateFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no isoguard record %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, err
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("isoguard record %s is corrupt: %v: %w", path, err, errdefs.ErrDataLoss)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("isoguard record %s has version %d, this wrapper reads %d: %w", path, st.Version, stateVersion, errdefs.ErrFailedPrecondition)
	}
	return &st, nil
}

// siblingBundle is the bundle of task id next to bundle (a pod's sandbox, or another task
// of the wrapper's namespace): containerd keeps every task bundle of a namespace in one
// directory (<state>/io.containerd.runtime.v2.task/<ns>/<id>), the same layout the runc shim
// relies on (cmd/containerd-shim-runc-v2/manager Stop).
func siblingBundle(bundle, id string) (string, error) {
	if err := checkPathElement("id", id); err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(filepath.Clean(bundle)), id), nil
}

// writeFileAtomic replaces path with data through a temporary file and a rename in the same
// directory, so a reader (containerd restoring, a concurrent `start` or `delete`) sees the
// old or the new content, never a part. It does not fsync: everything it writes lives in a
// task bundle under containerd's state directory and names processes that a crash of the
// machine ends anyway (Linux keeps that directory on tmpfs, /run/containerd; containerd
// cleans up every bundle of a dead shim at boot). Syncing cost 0.2-5 ms per file on the
// start path here (docs/benchmarks.md).
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil && !isNotSupported(err) {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return replaceFile(tmp.Name(), path)
}

func isNotSupported(err error) bool {
	return errors.Is(err, errors.ErrUnsupported)
}
