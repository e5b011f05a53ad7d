package enforce

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/policy"
	"github.com/isoguard/isoguard/shim/hooks"
)

// NewInput builds the policy input for a call the way the wrapper does (the operator's
// `isoguard explain` uses it too, so it explains exactly what the wrapper would decide).
// The container's role and pod come from the spec's CRI annotations; with inconsistent
// annotations the input says standalone, and the policy, which reads the same annotations,
// denies the call naming them.
func NewInput(call policy.Call, namespace, id string, spec *specs.Spec, pod *policy.Pins) policy.Input {
	in := policy.Input{Call: call, Namespace: namespace, ID: id, Spec: spec, Pod: pod, Role: cri.RoleStandalone}
	if spec != nil {
		if role, sandboxID, err := cri.ParseRole(spec.Annotations); err == nil {
			in.Role, in.SandboxID = role, sandboxID
		}
	}
	return in
}

// input builds the input of a call of a running instance, with the pod's pins.
func (e *Enforcer) input(call policy.Call, inst *hooks.Instance, id string, spec *specs.Spec) (policy.Input, error) {
	pins, err := Pins(inst.Pins)
	if err != nil {
		return policy.Input{}, err
	}
	return NewInput(call, inst.Namespace, id, spec, pins), nil
}

// Pins decodes the pins an instance's record holds (nil when there are none: the policy
// then denies, fail closed).
func Pins(raw json.RawMessage) (*policy.Pins, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var p policy.Pins
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("the pod's recorded pins are corrupt: %v: %w", err, errdefs.ErrDataLoss)
	}
	return &p, nil
}

// decodeProcess reads an Exec request's process: JSON of an OCI process.
func decodeProcess(a *anypb.Any) (*specs.Process, error) {
	var proc specs.Process
	if a == nil || json.Unmarshal(a.GetValue(), &proc) != nil {
		return nil, fmt.Errorf("the process spec (type %q) is not a JSON OCI process: %w", a.GetTypeUrl(), errdefs.ErrInvalidArgument)
	}
	return &proc, nil
}

// taskSpec is the spec of task id of the instance's namespace, or nil if it cannot be read
// (exec and update need it only for the Kubernetes names in the audit record).
func taskSpec(inst *hooks.Instance, id string) *specs.Spec {
	b, err := bundle.Sibling(inst.Bundle, id)
	if err != nil {
		return nil
	}
	spec, err := bundle.ReadSpec(b)
	if err != nil {
		return nil
	}
	return spec.Spec
}

func filepathBase(p string) string { return filepath.Base(filepath.Clean(p)) }
