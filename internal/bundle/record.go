package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"

	"github.com/isoguard/isoguard/shim/hooks"
)

// RecordFile is the file, in the bundle of a pod sandbox or standalone container, where the
// wrapper records the instance it started. A workload container may only join a pod whose
// sandbox bundle holds this record (threats T4): the record is the proof that this wrapper
// created the pod.
const RecordFile = "isoguard-state.json"

const recordVersion = 1

// Record is the wrapper's record of one wrapper instance (one pod or standalone container).
type Record struct {
	Version   int    `json:"version"`
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	// Sandbox is true when the instance was started for a CRI pod sandbox.
	Sandbox bool `json:"sandbox"`
	// Address is the wrapper's own ttrpc address, the one containerd was given, and TaskAPI
	// the task API version it answered containerd with (2, or 3 for containerd >= 2.3).
	Address string `json:"address"`
	TaskAPI int    `json:"taskAPI,omitempty"`
	// Pid of the wrapper daemon, and the wrapper's binary (which the pid must still run).
	Pid    int    `json:"pid"`
	Binary string `json:"binary,omitempty"`
	// Delegate is the shim the wrapper started and relays to.
	Delegate Delegate `json:"delegate"`
	// Denied is the start hook's denial when the wrapper started no delegate: it only answers
	// containerd's Create with the denial (docs/shim.md).
	Denied string `json:"denied,omitempty"`
	// Pins are the decisions the start hook fixed for the pod (tenant, isolation, ...),
	// which every later container of the pod must match; opaque to the wrapper.
	Pins json.RawMessage `json:"pins,omitempty"`
}

// Delegate is what the wrapper knows about its delegate.
type Delegate struct {
	Path        string            `json:"path"`
	Address     string            `json:"address"`
	Version     int               `json:"version"` // task API version the delegate answered (2 or 3)
	Pid         int               `json:"pid"`
	StdinFormat hooks.StdinFormat `json:"stdinFormat"`
}

// Instance is the record as the hooks see it.
func (r *Record) Instance(bundle string) *hooks.Instance {
	return &hooks.Instance{
		Namespace: r.Namespace,
		ID:        r.ID,
		Bundle:    bundle,
		Sandbox:   r.Sandbox,
		Delegate:  hooks.Delegate{Path: r.Delegate.Path, StdinFormat: r.Delegate.StdinFormat},
		Pins:      r.Pins,
	}
}

// Kind names what the record was started for, for messages.
func (r *Record) Kind() string {
	if r.Sandbox {
		return "pod sandbox"
	}
	return "standalone container"
}

// WriteRecord writes the record atomically.
func WriteRecord(bundle string, r *Record) error {
	r.Version = recordVersion
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(bundle, RecordFile), data, 0o600)
}

// ReadRecord reads a record. A missing record is errdefs.ErrNotFound, a corrupt one
// errdefs.ErrDataLoss, one of another format version errdefs.ErrFailedPrecondition.
func ReadRecord(bundle string) (*Record, error) {
	path := filepath.Join(bundle, RecordFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no isoguard record %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("isoguard record %s is corrupt: %v: %w", path, err, errdefs.ErrDataLoss)
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("isoguard record %s has version %d, this wrapper reads %d: %w", path, r.Version, recordVersion, errdefs.ErrFailedPrecondition)
	}
	return &r, nil
}
