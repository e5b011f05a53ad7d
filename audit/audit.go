// Package audit writes isoguard's audit trail: one JSON object per line, one line per
// policy decision, appended by every wrapper process of the node to one file with
// size-based rotation. Records are data, not log text; see docs/audit.md for the format.
//
// Records never carry environment values or other secrets from the spec: the policy's
// findings and mutations name rules, fields, paths, users and annotation keys only.
package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/isoguard/isoguard/policy"
)

// Outcome of one decision.
const (
	OutcomeAllowed = "allowed" // forwarded unchanged
	OutcomeMutated = "mutated" // forwarded with the listed mutations applied
	OutcomeDenied  = "denied"  // refused; the delegate never saw the call
	// OutcomeAudited: audit mode; nothing was applied, Denials and Mutations say what
	// enforce mode would have done.
	OutcomeAudited = "audited"
)

// Record is one audit record. Field names are part of the documented format.
type Record struct {
	Time      time.Time `json:"time"`
	Call      string    `json:"call"`
	Namespace string    `json:"namespace"` // containerd namespace
	// Kubernetes identity from CRI annotations (absent for non-CRI clients).
	KubeNamespace string `json:"kubernetesNamespace,omitempty"`
	KubePod       string `json:"kubernetesPod,omitempty"`
	KubeContainer string `json:"kubernetesContainer,omitempty"`
	ID            string `json:"id"`
	ExecID        string `json:"execId,omitempty"`
	SandboxID     string `json:"sandboxId,omitempty"`
	Tenant        string `json:"tenant"`
	Trusted       bool   `json:"trusted"`
	Mode          string `json:"mode"`
	Outcome       string `json:"outcome"`
	// Rules lists every rule ID that objected or mutated, sorted, without duplicates.
	Rules     []string          `json:"rules"`
	Denials   []policy.Finding  `json:"denials,omitempty"`
	Mutations []policy.Mutation `json:"mutations,omitempty"`
	// Error is set when no policy decision could be made (e.g. the policy file is missing
	// or invalid); the call was denied.
	Error string `json:"error,omitempty"`
	// Policy is the node policy file the decision was made with.
	Policy string `json:"policy"`
	Pid    int    `json:"pid"`
}

// Writer appends records to a file, rotating it when it would exceed MaxBytes: file ->
// file.1 -> ... -> file.<Backups>. Several processes may share one file: each append and
// rotation happens under an exclusive lock on <file>.lock.
type Writer struct {
	Path     string
	MaxBytes int64
	Backups  int

	mu sync.Mutex
}

// Defaults for rotation.
const (
	DefaultMaxBytes = 10 << 20
	DefaultBackups  = 5
)

// NewWriter returns a writer with defaults for zero values.
func NewWriter(path string, maxBytes int64, backups int) *Writer {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if backups <= 0 {
		backups = DefaultBackups
	}
	return &Writer{Path: path, MaxBytes: maxBytes, Backups: backups}
}

// Write appends one record.
func (w *Writer) Write(r *Record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := ensureDir(filepath.Dir(w.Path)); err != nil {
		return fmt.Errorf("audit directory: %w", err)
	}
	unlock, err := lockFile(w.Path + ".lock")
	if err != nil {
		return fmt.Errorf("audit lock: %w", err)
	}
	defer unlock()
	if st, err := os.Stat(w.Path); err == nil && st.Size() > 0 && st.Size()+int64(len(line)) > w.MaxBytes {
		if err := w.rotate(); err != nil {
			return fmt.Errorf("audit rotation: %w", err)
		}
	}
	f, err := os.OpenFile(w.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (w *Writer) rotate() error {
	for i := w.Backups - 1; i >= 1; i-- {
		from, to := w.Path+"."+strconv.Itoa(i), w.Path+"."+strconv.Itoa(i+1)
		if _, err := os.Stat(from); err == nil {
			if err := os.Rename(from, to); err != nil {
				return err
			}
		}
	}
	return os.Rename(w.Path, w.Path+".1")
}
