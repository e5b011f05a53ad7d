package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/audit"
	"github.com/isoguard/isoguard/policy"
)

// AuditEnv overrides the audit file's path (else the policy file's audit.path, else
// audit.DefaultPath).
const AuditEnv = "ISOGUARD_AUDIT_LOG"

// Enforcer is the Hooks that applies the node policy: it builds a policy.Input from what
// the shim saw, asks the policy for a Decision, writes the audit record, and applies the
// decision (denial, or mutations to the request and to config.json). It never decides.
//
// The policy file is read when first needed and again whenever its size or modification
// time changes. A missing, unreadable or invalid file denies every call that needs a
// decision, with an error naming the file and the problem (fail closed).
type Enforcer struct {
	mu     sync.Mutex
	cached *loadedPolicy
	writer *audit.Writer
}

type loadedPolicy struct {
	path     string
	platform policy.Platform
	mod      time.Time
	size     int64
	policy   *policy.Policy
	file     *policy.File
	err      error
}

// NewEnforcer returns an Enforcer.
func NewEnforcer() *Enforcer { return &Enforcer{} }

// PlatformOf is the rule profile for a delegate: the Windows profile (runhcs Options,
// Hyper-V, ContainerUser) for hcsshim's runhcs, the Linux profile (runc Options, sandbox
// runtime, non-root uid) for every other, runc-compatible, delegate. The profile follows
// the delegate, so one platform's Options can never reach the other platform's delegate;
// a policy file whose `platform` differs is refused.
func PlatformOf(delegatePath string) policy.Platform {
	name := strings.ToLower(delegatePath)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if strings.Contains(name, "runhcs") {
		return policy.Windows
	}
	return policy.Linux
}

func platformOf(inst *Instance) policy.Platform {
	if inst != nil && inst.State != nil && inst.State.Delegate.Path != "" {
		return PlatformOf(inst.State.Delegate.Path)
	}
	return policy.Platform(runtime.GOOS)
}

// current returns the compiled policy in effect for platform.
func (e *Enforcer) current(platform policy.Platform) (*loadedPolicy, error) {
	path := ConfigPath()
	st, statErr := os.Stat(path)
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.cached; c != nil && c.path == path && c.platform == platform && statErr == nil && c.err == nil && c.mod.Equal(st.ModTime()) && c.size == st.Size() {
		return c, nil
	}
	lp := &loadedPolicy{path: path, platform: platform}
	if statErr == nil {
		lp.mod, lp.size = st.ModTime(), st.Size()
	}
	f, err := LoadConfig(path)
	if err == nil {
		lp.file = f
		lp.policy, err = policy.Compile(f, platform)
		if err != nil {
			err = fmt.Errorf("node policy file %s: %w", path, err)
		}
	}
	if err != nil {
		if errdefs.IsNotFound(err) {
			err = fmt.Errorf("%w; isoguard denies every workload until a valid policy is installed", err)
		}
		lp.err = err
	}
	e.cached = lp
	e.writer = nil
	return lp, lp.err
}

func (e *Enforcer) auditWriter(lp *loadedPolicy) *audit.Writer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.writer != nil {
		return e.writer
	}
	path := os.Getenv(AuditEnv)
	var maxBytes int64
	var backups int
	if lp != nil && lp.file != nil {
		if path == "" {
			path = lp.file.Audit.Path
		}
		maxBytes, backups = int64(lp.file.Audit.MaxSizeMB)<<20, lp.file.Audit.MaxBackups
	}
	if path == "" {
		path = audit.DefaultPath
	}
	e.writer = audit.NewWriter(path, maxBytes, backups)
	return e.writer
}

// decide evaluates in, audits the decision, and returns it; the error is the denial.
func (e *Enforcer) decide(ctx context.Context, in policy.Input) (policy.Decision, error) {
	rec := &audit.Record{
		Time: time.Now().UTC(), Call: string(in.Call), Namespace: in.Namespace,
		ID: in.ID, ExecID: in.ExecID, SandboxID: in.SandboxID, Pid: os.Getpid(),
	}
	lp, err := e.current(in.Platform)
	if lp != nil {
		rec.Policy = lp.path
	}
	if err != nil {
		rec.Outcome, rec.Error, rec.Rules = audit.OutcomeDenied, err.Error(), []string{}
		if in.Pod != nil {
			rec.Tenant = in.Pod.Tenant
		}
		e.writeAudit(ctx, lp, rec)
		return policy.Decision{}, fmt.Errorf("isoguard: %s %s denied: %w: %w", in.Call, in.ID, err, errdefs.ErrPermissionDenied)
	}
	d := lp.policy.Evaluate(in)
	rec.Tenant, rec.Trusted, rec.Mode = d.Tenant, d.Trusted, string(d.Mode)
	rec.KubeNamespace, rec.KubePod, rec.KubeContainer = d.KubeNamespace, d.KubePod, d.KubeContainer
	rec.Denials, rec.Mutations = d.Denials, d.Mutations
	rec.Rules = ruleIDs(d)
	switch {
	case !d.Allowed:
		rec.Outcome = audit.OutcomeDenied
	case d.Mode == policy.Audit && (len(d.Denials) > 0 || len(d.Mutations) > 0):
		rec.Outcome = audit.OutcomeAudited
	case len(d.Mutations) > 0:
		rec.Outcome = audit.OutcomeMutated
	default:
		rec.Outcome = audit.OutcomeAllowed
	}
	e.writeAudit(ctx, lp, rec)
	log.G(ctx).WithFields(log.Fields{
		logMethod: in.Call, logID: in.ID, logTenant: d.Tenant, logOutcome: rec.Outcome, logRules: strings.Join(rec.Rules, ","),
	}).Info("isoguard decision")
	if err := d.Error(); err != nil {
		return d, fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
	}
	return d, nil
}

func (e *Enforcer) writeAudit(ctx context.Context, lp *loadedPolicy, rec *audit.Record) {
	// An audit trail that cannot be written is reported loudly but does not stop the node:
	// the decision itself is already made and applied.
	if err := e.auditWriter(lp).Write(rec); err != nil {
		log.G(ctx).WithError(err).Error("isoguard: audit record not written")
	}
}

func ruleIDs(d policy.Decision) []string {
	ids := []string{}
	for _, f := range d.Denials {
		ids = append(ids, f.Rule)
	}
	for _, m := range d.Mutations {
		ids = append(ids, m.Rule)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// ReadSpec decodes a bundle's config.json (bounded, see readSpecFile).
func ReadSpec(bundle string) (*specs.Spec, error) {
	data, err := readSpecFile(bundle)
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("OCI spec %s: %v: %w", filepath.Join(bundle, "config.json"), err, errdefs.ErrInvalidArgument)
	}
	return &s, nil
}

// writeSpec replaces a bundle's config.json atomically, keeping its file mode.
func writeSpec(bundle string, s *specs.Spec) error {
	path := filepath.Join(bundle, "config.json")
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	return writeFileAtomic(path, data, mode)
}

func roleOf(s *specs.Spec) (policy.Role, string) {
	if s == nil {
		return policy.RoleStandalone, ""
	}
	switch s.Annotations[AnnotationContainerType] {
	case ContainerTypeSandbox:
		return policy.RoleSandbox, s.Annotations[AnnotationSandboxID]
	case ContainerTypeContainer:
		return policy.RoleContainer, s.Annotations[AnnotationSandboxID]
	}
	return policy.RoleStandalone, ""
}

func (e *Enforcer) input(call policy.Call, inst *Instance, id string, spec *specs.Spec) policy.Input {
	var pins *policy.Pins
	if inst.State != nil {
		pins = inst.State.Pins
	}
	return NewInput(call, platformOf(inst), inst.Namespace, id, spec, pins)
}

// NewInput builds the policy input for a call the way the wrapper does (the operator's
// `isoguard explain` uses it too, so it explains exactly what the wrapper would decide).
func NewInput(call policy.Call, platform policy.Platform, namespace, id string, spec *specs.Spec, pod *policy.Pins) policy.Input {
	role, sb := roleOf(spec)
	return policy.Input{Call: call, Platform: platform, Namespace: namespace, ID: id, Role: role, SandboxID: sb, Spec: spec, Pod: pod}
}

// Start decides the pod (or standalone container) before the delegate starts: the options
// the delegate gets on stdin, config.json, and the pins every later container must match.
func (e *Enforcer) Start(ctx context.Context, inst *Instance, si *StartInput) error {
	spec, err := ReadSpec(inst.Bundle)
	if err != nil {
		return fmt.Errorf("isoguard: start %s denied: %w: %w", inst.State.ID, err, errdefs.ErrPermissionDenied)
	}
	in := e.input(policy.CallStart, inst, inst.State.ID, spec)
	in.Pod = nil
	in.Options = si.Options
	d, err := e.decide(ctx, in)
	if err != nil {
		return err
	}
	if d.Spec != nil {
		if err := writeSpec(inst.Bundle, d.Spec); err != nil {
			return err
		}
	}
	if d.Options != nil {
		si.Options = d.Options
	}
	inst.State.Pins = d.Pins
	if inst.State.Pins == nil {
		// Without pins later containers cannot be checked against the pod: fail closed.
		return fmt.Errorf("isoguard: start %s: the policy pinned nothing for the pod: %w", inst.State.ID, errdefs.ErrInternal)
	}
	return nil
}

// Join decides whether a workload container may join the pod of inst.
func (e *Enforcer) Join(ctx context.Context, inst *Instance, bundle string) error {
	spec, err := ReadSpec(bundle)
	if err != nil {
		return fmt.Errorf("isoguard: join denied: %w: %w", err, errdefs.ErrPermissionDenied)
	}
	in := e.input(policy.CallJoin, inst, filepath.Base(bundle), spec)
	d, err := e.decide(ctx, in)
	if err != nil {
		return err
	}
	if d.Spec != nil {
		return writeSpec(bundle, d.Spec)
	}
	return nil
}

// Create decides a task's creation: config.json (which runhcs and runc re-read from the
// bundle) and the Create options.
func (e *Enforcer) Create(ctx context.Context, inst *Instance, req *taskv2.CreateTaskRequest) error {
	spec, err := ReadSpec(req.Bundle)
	if err != nil {
		return fmt.Errorf("isoguard: create %s denied: %w: %w", req.ID, err, errdefs.ErrPermissionDenied)
	}
	in := e.input(policy.CallCreate, inst, req.ID, spec)
	in.Options = req.Options
	d, err := e.decide(ctx, in)
	if err != nil {
		return err
	}
	if d.Spec != nil {
		if err := writeSpec(req.Bundle, d.Spec); err != nil {
			return fmt.Errorf("isoguard: create %s: apply the policy to config.json: %w", req.ID, err)
		}
	}
	if d.Options != nil {
		req.Options = d.Options
	}
	return nil
}

// Exec decides an exec'd process (its user above all: CRI builds exec processes from the
// stored spec, not from config.json).
func (e *Enforcer) Exec(ctx context.Context, inst *Instance, req *taskv2.ExecProcessRequest) error {
	var proc specs.Process
	if req.Spec == nil || json.Unmarshal(req.Spec.GetValue(), &proc) != nil {
		return fmt.Errorf("isoguard: exec %s in %s denied: the process spec (type %q) is not a JSON OCI process: %w", req.ExecID, req.ID, req.Spec.GetTypeUrl(), errdefs.ErrPermissionDenied)
	}
	spec := taskSpec(inst, req.ID) // for the audit's Kubernetes names; optional
	in := e.input(policy.CallExec, inst, req.ID, spec)
	in.ExecID, in.Process = req.ExecID, &proc
	d, err := e.decide(ctx, in)
	if err != nil {
		return err
	}
	if d.Process != nil {
		data, err := json.Marshal(d.Process)
		if err != nil {
			return err
		}
		req.Spec = &anypb.Any{TypeUrl: req.Spec.GetTypeUrl(), Value: data}
	}
	return nil
}

// Update decides resource and annotation updates after admission.
func (e *Enforcer) Update(ctx context.Context, inst *Instance, req *taskv2.UpdateTaskRequest) error {
	spec := taskSpec(inst, req.ID)
	in := e.input(policy.CallUpdate, inst, req.ID, spec)
	in.Resources, in.UpdateAnnotations = req.Resources, req.Annotations
	_, err := e.decide(ctx, in)
	return err
}

// taskSpec is the spec of task id of the wrapper's namespace, or nil if it cannot be read.
func taskSpec(inst *Instance, id string) *specs.Spec {
	b, err := siblingBundle(inst.Bundle, id)
	if err != nil {
		return nil
	}
	spec, _ := ReadSpec(b)
	return spec
}
