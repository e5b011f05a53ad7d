package policy

import (
	"fmt"
	"slices"
	"strings"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
)

// CRI annotations (containerd internal/cri/annotations/annotations.go, v2.4.2; the same
// keys since containerd 1.x). hcsshim's pkg/annotations has the first two as
// KubernetesContainerType / KubernetesSandboxID.
const (
	AnnotationContainerType    = "io.kubernetes.cri.container-type"
	AnnotationSandboxID        = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
	AnnotationContainerName    = "io.kubernetes.cri.container-name"
)

// Evaluate decides one call. It never panics: a panic inside is recovered and becomes a
// denial by rule internal.error. Malformed input is a denial by rule input.invalid. Both
// deny in audit mode too. Evaluate neither modifies in nor keeps references to it beyond
// the returned Decision, whose results may share unchanged parts with in (treat both as
// read-only).
func (p *Policy) Evaluate(in Input) (d Decision) {
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprint(r)
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			d = Decision{
				Call: in.Call,
				Denials: []Finding{{
					Rule:   RuleInternalError,
					Reason: "policy evaluation failed (the call is denied, never allowed, when a check fails): " + msg,
				}},
			}
		}
	}()
	return p.evaluate(&in)
}

// identity is who a workload belongs to.
type identity struct {
	key           tenantKey
	tenant        string // display form: the Kubernetes namespace, or "containerd:<ns>"
	kubeNamespace string
	kubePod       string
	kubePodUID    string
	kubeContainer string
}

func tenantName(k tenantKey) string {
	if k.kind == tenantKubernetes {
		return k.name
	}
	return "containerd:" + k.name
}

// state is one evaluation: the input, what the rules found and the working results.
// Rules judge st.in (the input as received) and write through the *W methods, which copy
// what they change (copy on write): the input is never modified.
type state struct {
	p        *Policy
	in       *Input
	platform Platform
	id       identity
	mode     Mode // the decision's mode
	rule     string
	audit    bool // the current rule's findings are only recorded

	// Input options, decoded (at most one is set).
	hcsIn  *runhcsopts.Options
	runcIn *runcopts.Options

	// Working results. owned = this state made its own copy.
	spec                                     *specs.Spec
	specOwned, annOwned, procOwned, winOwned bool
	hcs                                      *runhcsopts.Options
	hcsOwned, hcsChanged                     bool
	runc                                     *runcopts.Options
	runcOwned, runcChanged                   bool
	proc                                     *specs.Process // exec
	execOwned                                bool

	findings  []Finding
	mutations []Mutation

	mounts []mountInfo // classification of in.Spec.Mounts, computed once (mountInfos)
}

func (st *state) deny(field, format string, args ...any) {
	st.findings = append(st.findings, Finding{Rule: st.rule, Field: field, Reason: fmt.Sprintf(format, args...), Audit: st.audit})
}

func (st *state) mutate(field, old, new, reason string) {
	st.mutations = append(st.mutations, Mutation{Rule: st.rule, Field: field, Old: old, New: new, Reason: reason, Audit: st.audit})
}

// specW returns the working spec, copied from the input (or the parent state) first.
func (st *state) specW() *specs.Spec {
	if !st.specOwned {
		c := *st.spec
		st.spec = &c
		st.specOwned = true
		st.annOwned, st.procOwned, st.winOwned = false, false, false
	}
	return st.spec
}

// annotationsW returns the working spec's annotations, a copy of the input's.
func (st *state) annotationsW() map[string]string {
	s := st.specW()
	if !st.annOwned {
		m := make(map[string]string, len(s.Annotations)+2)
		for k, v := range s.Annotations {
			m[k] = v
		}
		s.Annotations = m
		st.annOwned = true
	}
	return s.Annotations
}

// processW returns the working spec's process (nil when the spec has none).
func (st *state) processW() *specs.Process {
	s := st.specW()
	if s.Process == nil {
		return nil
	}
	if !st.procOwned {
		c := *s.Process
		c.User.AdditionalGids = slices.Clone(c.User.AdditionalGids)
		s.Process = &c
		st.procOwned = true
	}
	return s.Process
}

// windowsW returns the working spec's windows section, created when absent.
func (st *state) windowsW() *specs.Windows {
	s := st.specW()
	if !st.winOwned {
		var c specs.Windows
		if s.Windows != nil {
			c = *s.Windows
		}
		s.Windows = &c
		st.winOwned = true
	}
	return s.Windows
}

// execW returns the working exec process.
func (st *state) execW() *specs.Process {
	if !st.execOwned {
		c := *st.proc
		c.User.AdditionalGids = slices.Clone(c.User.AdditionalGids)
		st.proc = &c
		st.execOwned = true
	}
	return st.proc
}

// hcsW returns the working runhcs options (created when there were none).
func (st *state) hcsW() *runhcsopts.Options {
	if !st.hcsOwned {
		if st.hcs == nil {
			st.hcs = &runhcsopts.Options{}
		} else {
			st.hcs = proto.Clone(st.hcs).(*runhcsopts.Options)
		}
		st.hcsOwned = true
	}
	st.hcsChanged = true
	return st.hcs
}

// runcW returns the working runc options (created when there were none).
func (st *state) runcW() *runcopts.Options {
	if !st.runcOwned {
		if st.runc == nil {
			st.runc = &runcopts.Options{}
		} else {
			st.runc = proto.Clone(st.runc).(*runcopts.Options)
		}
		st.runcOwned = true
	}
	st.runcChanged = true
	return st.runc
}

// fork returns a state for a rule in audit mode: it sees the results so far, and what it
// writes is copied again and then dropped.
func (st *state) fork() *state {
	c := *st
	c.specOwned, c.annOwned, c.procOwned, c.winOwned = false, false, false, false
	c.hcsOwned, c.runcOwned, c.execOwned = false, false, false
	c.findings, c.mutations = nil, nil
	c.audit = true
	return &c
}

// isolation is the isolation the call ends up with: what the rules made of it in
// enforce mode, the input's in audit mode (nothing is applied then).
func (st *state) isolation() string {
	spec, hcs, runc := st.spec, st.hcs, st.runc
	if st.mode == Audit {
		spec, hcs, runc = st.in.Spec, st.hcsIn, st.runcIn
	}
	if st.platform == Linux {
		return linuxIsolation(runc)
	}
	return windowsIsolation(hcs, spec != nil && spec.Windows != nil && spec.Windows.HyperV != nil)
}

// annotation returns an annotation of the input spec.
func (st *state) annotation(key string) (string, bool) {
	if st.in.Spec == nil {
		return "", false
	}
	v, ok := st.in.Spec.Annotations[key]
	return v, ok
}

func (p *Policy) evaluate(in *Input) Decision {
	st := &state{p: p, in: in, platform: p.platform, spec: in.Spec, proc: in.Process, mode: p.mode}
	st.rule = RuleInvalidInput
	st.checkInput()
	if len(st.findings) > 0 {
		return Decision{Call: in.Call, Mode: p.mode, Denials: st.findings}
	}
	// The working options start as the decoded input; the first write copies them, so
	// st.hcsIn / st.runcIn stay as received for the rules that judge them.
	st.hcs, st.runc = st.hcsIn, st.runcIn
	st.id = p.identify(in)

	setting := p.tenants[st.id.key]
	st.mode = orDefault(setting.mode, p.mode)
	trusted := setting.trusted
	if in.Call != CallStart {
		// Trust is pinned at the pod: a container is trusted only in a trusted pod of
		// the same tenant (pod-consistency denies the rest).
		pod := in.Pod
		trusted = trusted && pod != nil && pod.Trusted && pod.Tenant == st.id.tenant && pod.Namespace == in.Namespace
	}
	d := Decision{
		Call:          in.Call,
		Tenant:        st.id.tenant,
		Trusted:       trusted,
		Mode:          st.mode,
		KubeNamespace: st.id.kubeNamespace,
		KubePod:       st.id.kubePod,
		KubeContainer: st.id.kubeContainer,
	}
	if !trusted {
		for _, r := range p.rules {
			if !r.appliesTo(st.platform, in.Call) {
				continue
			}
			if st.mode == Enforce && p.ruleModes[r.id] == Audit {
				f := st.fork()
				f.rule = r.id
				r.check(f)
				st.findings = append(st.findings, f.findings...)
				st.mutations = append(st.mutations, f.mutations...)
				continue
			}
			st.rule = r.id
			st.audit = st.mode == Audit
			r.check(st)
		}
	}
	d.Denials, d.Mutations = st.findings, st.mutations
	d.Allowed = true
	for _, f := range d.Denials {
		if !f.Audit {
			d.Allowed = false
		}
	}
	if !d.Allowed {
		return d
	}
	if st.mode == Enforce && !trusted {
		if st.specOwned {
			d.Spec = st.spec
		}
		if st.execOwned {
			d.Process = st.proc
		}
		var err error
		switch {
		case st.hcsChanged:
			d.Options, err = encodeOptions(TypeURLRunhcsOptions, st.hcs)
		case st.runcChanged:
			d.Options, err = encodeOptions(TypeURLRuncOptions, st.runc)
		}
		if err != nil {
			return Decision{Call: in.Call, Tenant: d.Tenant, Mode: d.Mode, Denials: []Finding{{
				Rule: RuleInternalError, Field: "options", Reason: "cannot encode the runtime options: " + err.Error(),
			}}}
		}
	}
	if in.Call == CallStart {
		d.Pins = &Pins{
			Tenant:        st.id.tenant,
			Trusted:       trusted,
			Isolation:     st.isolation(),
			Namespace:     in.Namespace,
			SandboxID:     in.ID,
			KubeNamespace: st.id.kubeNamespace,
			KubePod:       st.id.kubePod,
			KubePodUID:    st.id.kubePodUID,
		}
	}
	return d
}

// identify finds the workload's tenant. The Kubernetes namespace (CRI annotation
// io.kubernetes.cri.sandbox-namespace) counts only for a pod sandbox or container in the
// CRI plugin's containerd namespace; anything else (ctr, other clients, a standalone
// container that merely carries the annotation) is the tenant of its containerd namespace
// (threats T2). For exec and update the pod's pins name the Kubernetes identity.
func (p *Policy) identify(in *Input) identity {
	id := identity{key: tenantKey{kind: tenantContainerd, name: in.Namespace}}
	cri := in.Namespace == p.criNamespace
	switch {
	case in.Spec != nil && (in.Call == CallStart || in.Call == CallJoin || in.Call == CallCreate):
		a := in.Spec.Annotations
		if cri && (in.Role == RoleSandbox || in.Role == RoleContainer) && a[AnnotationSandboxNamespace] != "" {
			id.key = tenantKey{kind: tenantKubernetes, name: a[AnnotationSandboxNamespace]}
			id.kubeNamespace = a[AnnotationSandboxNamespace]
			id.kubePod = a[AnnotationSandboxName]
			id.kubePodUID = a[AnnotationSandboxUID]
			id.kubeContainer = a[AnnotationContainerName]
		}
	case in.Pod != nil:
		if cri && in.Pod.KubeNamespace != "" {
			id.key = tenantKey{kind: tenantKubernetes, name: in.Pod.KubeNamespace}
			id.kubeNamespace = in.Pod.KubeNamespace
			id.kubePod = in.Pod.KubePod
			id.kubePodUID = in.Pod.KubePodUID
		}
	}
	id.tenant = tenantName(id.key)
	return id
}

// checkInput records input.invalid findings (threats T13): the parts each call needs, the
// platform, the role against the spec's CRI annotations, and the runtime options' type.
func (st *state) checkInput() {
	in := st.in
	switch in.Call {
	case CallStart, CallJoin, CallCreate, CallExec, CallUpdate:
	default:
		st.deny("call", "unknown call %q", in.Call)
		return
	}
	if in.Platform != "" && in.Platform != st.platform {
		st.deny("platform", "the call is for platform %q but the policy is for %q", in.Platform, st.platform)
	}
	if in.Namespace == "" {
		st.deny("namespace", "no containerd namespace")
	}
	switch in.Role {
	case RoleStandalone, RoleSandbox, RoleContainer:
	case "":
		if in.Call == CallStart || in.Call == CallJoin || in.Call == CallCreate {
			st.deny("role", "no role (standalone, sandbox or container) for a %s call", in.Call)
		}
	default:
		st.deny("role", "unknown role %q", in.Role)
	}
	switch in.Call {
	case CallStart:
		if in.Pod != nil {
			st.deny("pod", "pins are given at start; a start records them")
		}
		if in.Role == RoleContainer {
			st.deny("role", "a workload container's start must be a join")
		}
	case CallJoin:
		if in.Role != RoleContainer {
			st.deny("role", "a join is for a workload container, not role %q", in.Role)
		}
	case CallExec:
		if in.Process == nil {
			st.deny("process", "an exec without a process spec")
		}
	}
	needSpec := in.Call == CallStart || in.Call == CallJoin || in.Call == CallCreate
	if needSpec && in.Spec == nil {
		st.deny("spec", "no OCI spec (config.json) for a %s call", in.Call)
	}
	if in.Spec != nil && needSpec {
		st.checkRole()
	}
	if in.Options != nil && (in.Call == CallStart || in.Call == CallCreate) {
		hcs, runc, err := decodeOptions(st.platform, in.Options)
		if err != nil {
			st.deny("options", "%v", err)
		}
		st.hcsIn, st.runcIn = hcs, runc
	}
}

// checkRole compares the role the shim derived with the spec's CRI annotations
// (io.kubernetes.cri.container-type and sandbox-id come together, as runhcs requires).
func (st *state) checkRole() {
	in := st.in
	a := in.Spec.Annotations
	t, hasType := a[AnnotationContainerType]
	sid := a[AnnotationSandboxID]
	want := RoleStandalone
	switch {
	case !hasType && sid == "":
	case hasType && t == "sandbox" && sid != "":
		want = RoleSandbox
	case hasType && t == "container" && sid != "":
		want = RoleContainer
	default:
		st.deny("annotations", "inconsistent CRI annotations %s=%q / %s=%q", AnnotationContainerType, t, AnnotationSandboxID, sid)
		return
	}
	if in.Role != want {
		st.deny("role", "role %q does not match the spec's CRI annotations (%q)", in.Role, want)
		return
	}
	if want != RoleStandalone && sid != in.SandboxID {
		st.deny("sandboxID", "sandbox id %q does not match the spec's %s %q", in.SandboxID, AnnotationSandboxID, sid)
	}
	if want == RoleSandbox && in.ID != in.SandboxID {
		st.deny("sandboxID", "a pod sandbox %q must be its own sandbox, not %q", in.ID, in.SandboxID)
	}
}

// redact returns v when it cannot be a secret (a number or a boolean), else "(redacted)".
func redact(v string) string {
	if v == "" {
		return `""`
	}
	if len(v) <= 20 && strings.Trim(v, "0123456789") == "" {
		return v
	}
	switch strings.ToLower(v) {
	case "true", "false":
		return v
	}
	return "(redacted)"
}
