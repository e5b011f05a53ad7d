// Package enforce is isoguard's enforcer: the hooks.Hooks that applies the node policy. For
// every call that decides isolation and identity it builds a policy.Input from what the
// wrapper saw, asks the policy for a Decision, writes the audit record and applies the
// decision (a denial, or changes to the request, to the bundle's config.json and to the
// options the delegate gets). It never decides: package policy does.
//
// The node policy file is read for every decision and compiled again only when its content
// changed. A missing, unreadable or invalid file denies every call that needs a decision,
// with an error naming the file and the problem (fail closed), and the denial is audited.
package enforce

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/audit"
	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/jsonedit"
	"github.com/isoguard/isoguard/policy"
	"github.com/isoguard/isoguard/shim/hooks"
)

// Enforcer implements hooks.Hooks with the node policy.
type Enforcer struct {
	policy cache

	mu     sync.Mutex
	writer *audit.Writer
	// writerFor is the policy version the audit writer was configured from.
	writerFor *loaded
}

var _ hooks.Hooks = (*Enforcer)(nil)

// New returns an Enforcer.
func New() *Enforcer { return &Enforcer{} }

// Describe names the policy file in the wrapper's RuntimeInfo (`-info`).
func (e *Enforcer) Describe() map[string]string {
	return map[string]string{"isoguard.dev/config": ConfigPath()}
}

// Delegate is the policy file's delegate section (the defaults when there is no file).
func (e *Enforcer) Delegate(context.Context) (hooks.Delegate, error) {
	l := e.policy.current()
	if l.err != nil {
		if errdefs.IsNotFound(l.err) {
			return hooks.Delegate{}, nil
		}
		return hooks.Delegate{}, l.err
	}
	return l.file.Delegate, nil
}

// Start decides the pod (or standalone container) before the delegate starts: the
// delegate and the options it gets on stdin, config.json, and the pins every later
// container must match.
func (e *Enforcer) Start(ctx context.Context, inst *hooks.Instance, req *hooks.StartRequest) error {
	spec, err := bundle.ReadSpec(inst.Bundle)
	if err != nil {
		return e.refuse(ctx, policy.CallStart, inst, inst.ID, err)
	}
	in := NewInput(policy.CallStart, inst.Namespace, inst.ID, spec.Spec, nil)
	in.Options = req.Options
	l, d, err := e.decide(ctx, in)
	if err != nil {
		return err
	}
	if d.Spec != nil {
		if err := bundle.WriteSpec(inst.Bundle, spec, d.Spec); err != nil {
			return fmt.Errorf("start %s: apply the policy to config.json: %w", inst.ID, err)
		}
	}
	if d.Options != nil {
		req.Options = d.Options
	}
	if d.Pins == nil {
		// Without pins later containers cannot be checked against the pod: fail closed.
		return fmt.Errorf("start %s: the policy pinned nothing for the pod: %w", inst.ID, errdefs.ErrInternal)
	}
	if inst.Pins, err = json.Marshal(d.Pins); err != nil {
		return fmt.Errorf("start %s: record the pod's pins: %w", inst.ID, err)
	}
	req.Delegate = l.file.Delegate
	if d.Delegate != nil {
		// The pod runs in another shim than the node's (Linux: the sandbox runtime's).
		req.Delegate = *d.Delegate
	}
	return nil
}

// Join decides whether a workload container may join the pod of inst.
func (e *Enforcer) Join(ctx context.Context, inst *hooks.Instance, workload string) error {
	id := filepathBase(workload)
	spec, err := bundle.ReadSpec(workload)
	if err != nil {
		return e.refuse(ctx, policy.CallJoin, inst, id, err)
	}
	in, err := e.input(policy.CallJoin, inst, id, spec.Spec)
	if err != nil {
		return e.refuse(ctx, policy.CallJoin, inst, id, err)
	}
	_, d, err := e.decide(ctx, in)
	if err != nil {
		return err
	}
	if d.Spec != nil {
		return bundle.WriteSpec(workload, spec, d.Spec)
	}
	return nil
}

// Create decides a task's creation: config.json (which runhcs and runc re-read from the
// bundle) and the Create options.
func (e *Enforcer) Create(ctx context.Context, inst *hooks.Instance, req *hooks.CreateRequest) error {
	spec, err := bundle.ReadSpec(req.Bundle)
	if err != nil {
		return e.refuse(ctx, policy.CallCreate, inst, req.ID, err)
	}
	in, err := e.input(policy.CallCreate, inst, req.ID, spec.Spec)
	if err != nil {
		return e.refuse(ctx, policy.CallCreate, inst, req.ID, err)
	}
	in.Options, in.Rootfs, in.Stdio = req.Options, req.Rootfs, req.Stdio
	in.Checkpoint, in.ParentCheckpoint = req.Checkpoint, req.ParentCheckpoint
	_, d, err := e.decide(ctx, in)
	if err != nil {
		return err
	}
	if d.Spec != nil {
		if err := bundle.WriteSpec(req.Bundle, spec, d.Spec); err != nil {
			return fmt.Errorf("create %s: apply the policy to config.json: %w", req.ID, err)
		}
	}
	if d.Options != nil {
		req.Options = d.Options
	}
	return nil
}

// Exec decides an exec'd process (its user above all: CRI builds exec processes from the
// stored spec, not from config.json).
func (e *Enforcer) Exec(ctx context.Context, inst *hooks.Instance, req *hooks.ExecRequest) error {
	proc, err := decodeProcess(req.Spec)
	if err != nil {
		return e.refuse(ctx, policy.CallExec, inst, req.ID, fmt.Errorf("exec %s in %s: %w", req.ExecID, req.ID, err))
	}
	in, err := e.input(policy.CallExec, inst, req.ID, taskSpec(inst, req.ID))
	if err != nil {
		return e.refuse(ctx, policy.CallExec, inst, req.ID, err)
	}
	in.ExecID, in.Process, in.Stdio = req.ExecID, proc, req.Stdio
	_, d, err := e.decide(ctx, in)
	if err != nil {
		return err
	}
	if d.Process != nil {
		// The request's own JSON, with the decision's changes: nothing else is lost.
		data, err := jsonedit.Rewrite(req.Spec.GetValue(), proc, d.Process)
		if err != nil {
			return fmt.Errorf("exec %s in %s: apply the policy to the process: %w", req.ExecID, req.ID, err)
		}
		req.Spec = &anypb.Any{TypeUrl: req.Spec.GetTypeUrl(), Value: data}
	}
	return nil
}

// Update decides resource and annotation updates after admission.
func (e *Enforcer) Update(ctx context.Context, inst *hooks.Instance, req *hooks.UpdateRequest) error {
	in, err := e.input(policy.CallUpdate, inst, req.ID, taskSpec(inst, req.ID))
	if err != nil {
		return e.refuse(ctx, policy.CallUpdate, inst, req.ID, err)
	}
	in.Resources, in.UpdateAnnotations = req.Resources, req.Annotations
	_, _, err = e.decide(ctx, in)
	return err
}
