// Package standin is the record format of the runhcs STAND-IN
// (integration/standin/containerd-shim-runhcs-v1, a Linux test program that plays hcsshim's
// containerd-shim-runhcs-v1 so that containerd -> isoguard -> "runhcs" can run on Linux) and
// the reader the integration tests use to see what the delegate received.
//
// The stand-in appends one JSON object per line (a Record) for every call it receives to the
// file named by $STANDIN_RECORD (containerd passes its environment to the wrapper, which
// passes it to the delegate), else to <bundle>/standin-record.jsonl.
package standin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/encoding/protojson"
)

// RecordEnv names the record file; BundleRecord is the fallback file name in the bundle.
const (
	RecordEnv    = "STANDIN_RECORD"
	BundleRecord = "standin-record.jsonl"
)

// Calls recorded. The binary's commands are lower case, the task API methods are named as
// in containerd.task.v2.Task.
const (
	CallStart         = "start"  // the `start` command: what arrived on stdin
	CallServe         = "serve"  // the serve daemon decoded stdin (Error set when it refused)
	CallDeleteCommand = "delete" // the `delete` command
	CallCreate        = "Create"
	CallStartTask     = "Start"
	CallExec          = "Exec"
	CallKill          = "Kill"
	CallDelete        = "Delete"
	CallUpdate        = "Update"
	CallStats         = "Stats"
	CallShutdown      = "Shutdown"
)

// Mount is a rootfs mount of a Create request.
type Mount struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Target  string   `json:"target,omitempty"`
	Options []string `json:"options,omitempty"`
}

// Record is one call the stand-in received.
type Record struct {
	Time      time.Time `json:"time"`
	Pid       int       `json:"pid"` // the stand-in process that recorded it
	Call      string    `json:"call"`
	Namespace string    `json:"namespace,omitempty"`
	ID        string    `json:"id,omitempty"`
	ExecID    string    `json:"execID,omitempty"`
	Bundle    string    `json:"bundle,omitempty"`
	// Error is the error the stand-in answered (the call failed); empty on success.
	Error string `json:"error,omitempty"`

	// start / delete commands: the command line (without argv[0]).
	Args []string `json:"args,omitempty"`
	// start / serve: how stdin looked: "empty" or "any" (a bare protobuf Any).
	StdinFormat string `json:"stdinFormat,omitempty"`

	// start, serve, Create: the runtime options' type URL and, when they are runhcs
	// Options, their protojson form (see RunhcsOptions).
	OptionsTypeURL string          `json:"optionsTypeURL,omitempty"`
	Options        json.RawMessage `json:"options,omitempty"`

	// Create: the request, and config.json as the stand-in re-read it from the bundle
	// (runhcs re-reads it too), byte for byte.
	Rootfs   []Mount         `json:"rootfs,omitempty"`
	Stdin    string          `json:"stdin,omitempty"`
	Stdout   string          `json:"stdout,omitempty"`
	Stderr   string          `json:"stderr,omitempty"`
	Terminal bool            `json:"terminal,omitempty"`
	Spec     json.RawMessage `json:"spec,omitempty"`
	// Isolation is what runhcs would run the container with: "hypervisor" or "process".
	Isolation string `json:"isolation,omitempty"`

	// Exec: the process spec (ExecProcessRequest.Spec.Value, JSON of specs.Process).
	ProcessTypeURL string          `json:"processTypeURL,omitempty"`
	Process        json.RawMessage `json:"process,omitempty"`

	// Kill.
	Signal uint32 `json:"signal,omitempty"`
	All    bool   `json:"all,omitempty"`

	// Update: the resources (typeurl JSON of specs.WindowsResources) and annotations.
	ResourcesTypeURL string            `json:"resourcesTypeURL,omitempty"`
	Resources        json.RawMessage   `json:"resources,omitempty"`
	Annotations      map[string]string `json:"annotations,omitempty"`

	// Delete (task API and command): the exit status answered.
	ExitStatus *uint32 `json:"exitStatus,omitempty"`
}

// RunhcsOptions decodes Options (nil when the record holds none).
func (r Record) RunhcsOptions() (*runhcsopts.Options, error) {
	if len(r.Options) == 0 {
		return nil, nil
	}
	var o runhcsopts.Options
	if err := protojson.Unmarshal(r.Options, &o); err != nil {
		return nil, fmt.Errorf("record %s %s: options: %w", r.Call, r.ID, err)
	}
	return &o, nil
}

// OCISpec decodes Spec (a Create's config.json).
func (r Record) OCISpec() (*specs.Spec, error) {
	if len(r.Spec) == 0 {
		return nil, fmt.Errorf("record %s %s holds no spec", r.Call, r.ID)
	}
	var s specs.Spec
	if err := json.Unmarshal(r.Spec, &s); err != nil {
		return nil, fmt.Errorf("record %s %s: spec: %w", r.Call, r.ID, err)
	}
	return &s, nil
}

// OCIProcess decodes Process (an Exec's process spec).
func (r Record) OCIProcess() (*specs.Process, error) {
	if len(r.Process) == 0 {
		return nil, fmt.Errorf("record %s %s/%s holds no process", r.Call, r.ID, r.ExecID)
	}
	var p specs.Process
	if err := json.Unmarshal(r.Process, &p); err != nil {
		return nil, fmt.Errorf("record %s %s/%s: process: %w", r.Call, r.ID, r.ExecID, err)
	}
	return &p, nil
}

// RecordPath is where a stand-in working on bundle records: $STANDIN_RECORD, else the
// bundle's standin-record.jsonl.
func RecordPath(bundle string) string {
	if p := os.Getenv(RecordEnv); p != "" {
		return p
	}
	return filepath.Join(bundle, BundleRecord)
}

// Append writes r as one line to path. Several stand-in processes share the file: each line
// is a single write(2) to a file opened with O_APPEND, which Linux performs atomically for a
// regular file (the offset update and the write happen under the inode lock), so lines never
// interleave.
func Append(path string, r Record) error {
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	if r.Pid == 0 {
		r.Pid = os.Getpid()
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Read returns every record in path (none when the file does not exist).
func Read(path string) ([]Record, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}
