// Package hooks is the wrapper's one seam: the calls that decide isolation and identity
// (a pod's start, a container joining a pod, and the task API's Create, Exec and Update)
// pass through a Hooks before they reach the delegate shim. The wrapper itself
// (package shim) decides nothing; isoguard's enforcer (internal/enforce) implements Hooks
// with the node policy, and PassThrough makes the wrapper invisible.
//
// The types here carry only what a hook needs, decoded from containerd's messages by the
// wrapper, so an implementation depends on no transport (ttrpc) and no generated API
// package.
package hooks

import (
	"context"
	"encoding/json"

	"google.golang.org/protobuf/types/known/anypb"
)

// Hooks decides. A hook may modify the request it is given (and the bundle's config.json,
// which the delegate re-reads at Create); a returned error denies the call and should wrap
// an errdefs sentinel (errdefs.ErrPermissionDenied for a policy denial): the wrapper
// converts it once, at its edge (the ttrpc status of a task call, the exit message of
// `start`). A hook that panics denies: the wrapper recovers and answers
// errdefs.ErrInternal.
type Hooks interface {
	// Delegate is the delegate the wrapper uses where no start decided one: `delete` and
	// `-info` of a bundle without the wrapper's record.
	Delegate(ctx context.Context) (Delegate, error)
	// Start runs in the wrapper daemon before the delegate's `start`, for a pod sandbox or
	// a standalone container. It may replace req.Options (what the delegate gets on stdin),
	// choose req.Delegate, and record the pod's pins in inst.Pins, which every later call
	// of the pod receives back.
	Start(ctx context.Context, inst *Instance, req *StartRequest) error
	// Join runs in `start` for a workload container that joins the pod of inst; bundle is
	// the workload container's own bundle.
	Join(ctx context.Context, inst *Instance, bundle string) error
	Create(ctx context.Context, inst *Instance, req *CreateRequest) error
	Exec(ctx context.Context, inst *Instance, req *ExecRequest) error
	Update(ctx context.Context, inst *Instance, req *UpdateRequest) error
	// Refused is told of a call the wrapper refused before any hook could decide it (a
	// workload naming a pod the wrapper did not start, an unreadable config.json or stdin,
	// a request that does not decode), so that every refusal leaves a record.
	Refused(ctx context.Context, r Refusal)
}

// Refusal is a call the wrapper refused on its own.
type Refusal struct {
	Call      string // start, join, create, exec, update
	Namespace string
	ID        string // the task
	SandboxID string // the pod it named, if any
	Cause     error
}

// Instance is the wrapper instance a call arrived at: one pod, or one standalone container.
type Instance struct {
	Namespace string // containerd namespace
	// ID and Bundle are the pod sandbox's (or the standalone container's): the task the
	// wrapper was started for.
	ID     string
	Bundle string
	// Sandbox is true for a CRI pod sandbox.
	Sandbox bool
	// Delegate is the delegate shim serving the instance (empty Path before Start chose).
	Delegate Delegate
	// Pins is what Start recorded for the pod, opaque to the wrapper, which keeps it in
	// the instance's record and hands it to every later hook of the instance.
	Pins json.RawMessage
}

// StartRequest is a start's input, as received from containerd.
type StartRequest struct {
	// Options are the runtime options on start's stdin (nil when none were sent); what is
	// here after Start is what the delegate gets.
	Options *anypb.Any
	// Delegate is the delegate to start: Start may set it; a zero Path means the OS
	// default (containerd-shim-runhcs-v1.exe beside containerd on Windows,
	// containerd-shim-runc-v2 on PATH on Linux).
	Delegate Delegate
}

// CreateRequest is what a hook sees of containerd's CreateTaskRequest. Only Options may be
// replaced; the other fields are the request as received, for the hook to judge.
type CreateRequest struct {
	ID     string
	Bundle string // holds the config.json the delegate reads
	// Rootfs are the mounts that make the container's root file system (the
	// snapshotter's, as containerd passes them; the delegate mounts them).
	Rootfs []Mount
	// Stdio is where the task's standard streams go.
	Stdio Stdio
	// Checkpoint and ParentCheckpoint are host directories to restore the task from.
	Checkpoint, ParentCheckpoint string
	// Options are the runtime options; a hook may replace them.
	Options *anypb.Any
}

// ExecRequest is what a hook sees of containerd's ExecProcessRequest. Only Spec may be
// replaced.
type ExecRequest struct {
	ID     string // the container
	ExecID string
	Stdio  Stdio
	// Spec is the process to run (JSON of an OCI process, as containerd sends it); a hook
	// may replace it.
	Spec *anypb.Any
}

// Mount is a mount of containerd's task API (containerd.types.Mount).
type Mount struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Target  string   `json:"target,omitempty"`
	Options []string `json:"options,omitempty"`
}

// Stdio is where a process's standard streams go: a fifo or named pipe path the client
// created, or a URI the delegate interprets (binary://, file://); empty = none.
type Stdio struct {
	Stdin    string `json:"stdin,omitempty"`
	Stdout   string `json:"stdout,omitempty"`
	Stderr   string `json:"stderr,omitempty"`
	Terminal bool   `json:"terminal,omitempty"`
}

// UpdateRequest is what a hook sees of containerd's UpdateTaskRequest.
type UpdateRequest struct {
	ID          string
	Resources   *anypb.Any
	Annotations map[string]string
}

// Delegate is the shim the wrapper runs and relays to.
type Delegate struct {
	// Path is the delegate binary's absolute path ("" = the OS default).
	Path string `json:"path" yaml:"path"`
	// StdinFormat is how start's runtime options are handed to the delegate.
	StdinFormat StdinFormat `json:"stdinFormat,omitempty" yaml:"stdinFormat"`
}

// StdinFormat is how runtime options reach a shim's `start` on stdin.
type StdinFormat string

const (
	// StdinAuto (or "") hands the delegate what containerd itself would: a bare Any to a
	// binary named *shim-runc-v1* or *shim-runhcs-v1*, else the format received.
	StdinAuto StdinFormat = "auto"
	// StdinAny is a protobuf-encoded bare google.protobuf.Any (containerd 1.x and 2.0-2.2,
	// and 2.3+ for binaries named *shim-runc-v1* or *shim-runhcs-v1*).
	StdinAny StdinFormat = "any"
	// StdinBootstrap is a protobuf containerd.runtime.bootstrap.v1.BootstrapParams with the
	// options attached as an extension (containerd 2.3+, core/runtime/v2/command.go).
	StdinBootstrap StdinFormat = "bootstrap"
	// StdinEmpty is nothing on stdin: what containerd sends when a runtime has no options.
	// It is a format received, never one configured.
	StdinEmpty StdinFormat = "empty"
)

// Configurable reports whether f may be configured for a delegate: "", auto, any or
// bootstrap.
func (f StdinFormat) Configurable() bool {
	switch f {
	case "", StdinAuto, StdinAny, StdinBootstrap:
		return true
	}
	return false
}

// PassThrough is the Hooks that changes nothing: the wrapper is then invisible.
type PassThrough struct{}

func (PassThrough) Delegate(context.Context) (Delegate, error)              { return Delegate{}, nil }
func (PassThrough) Start(context.Context, *Instance, *StartRequest) error   { return nil }
func (PassThrough) Join(context.Context, *Instance, string) error           { return nil }
func (PassThrough) Create(context.Context, *Instance, *CreateRequest) error { return nil }
func (PassThrough) Exec(context.Context, *Instance, *ExecRequest) error     { return nil }
func (PassThrough) Update(context.Context, *Instance, *UpdateRequest) error { return nil }
func (PassThrough) Refused(context.Context, Refusal)                        {}
