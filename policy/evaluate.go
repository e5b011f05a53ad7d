package policy

import (
	"fmt"
	"slices"
	"strings"
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

func (p *Policy) evaluate(in *Input) Decision {
	ev := &evaluation{p: p, in: in, platform: p.platform, spec: in.Spec, proc: in.Process, mode: p.mode}
	ev.rule = RuleInvalidInput
	ev.checkInput()
	if len(ev.findings) > 0 {
		return Decision{Call: in.Call, Mode: p.mode, Denials: ev.findings}
	}
	// The working options start as the decoded input; the first write copies them, so
	// ev.hcsIn / ev.runcIn stay as received for the rules that judge them.
	ev.hcs, ev.runc = ev.hcsIn, ev.runcIn
	ev.id = p.identify(in)
	trusted := ev.trust()
	if !trusted {
		ev.runRules()
	}
	d := Decision{
		Call:          in.Call,
		Tenant:        ev.id.tenant,
		Trusted:       trusted,
		Mode:          ev.mode,
		KubeNamespace: ev.id.kubeNamespace,
		KubePod:       ev.id.kubePod,
		KubeContainer: ev.id.kubeContainer,
		Denials:       ev.findings,
		Mutations:     ev.mutations,
		Allowed:       !slices.ContainsFunc(ev.findings, func(f Finding) bool { return !f.Audit }),
	}
	if !d.Allowed {
		return d
	}
	if ev.mode == Enforce && !trusted {
		if err := ev.results(&d); err != nil {
			return Decision{Call: in.Call, Tenant: d.Tenant, Mode: d.Mode, Denials: []Finding{{
				Rule: RuleInternalError, Field: "options", Reason: "cannot encode the runtime options: " + err.Error(),
			}}}
		}
	}
	if in.Call == CallStart {
		d.Pins = ev.pins(trusted)
	}
	return d
}

// trust decides the evaluation's mode and whether its workload is trusted. Trust is pinned
// at the pod: a container is trusted only in a trusted pod of the same tenant
// (pod-consistency denies the rest).
func (ev *evaluation) trust() bool {
	setting := ev.p.tenants[ev.id.key]
	ev.mode = orDefault(setting.mode, ev.p.mode)
	trusted := setting.trusted
	if in := ev.in; in.Call != CallStart {
		pod := in.Pod
		trusted = trusted && pod != nil && pod.Trusted && pod.Tenant == ev.id.tenant && pod.Namespace == in.Namespace
	}
	return trusted
}

// runRules runs every rule of the profile that inspects the call. A rule switched to audit
// mode (File.Rules) runs on a fork: its findings and mutations are recorded, not applied.
func (ev *evaluation) runRules() {
	for _, r := range ev.p.rules {
		if !r.appliesTo(ev.platform, ev.in.Call) {
			continue
		}
		if ev.mode == Enforce && ev.p.ruleModes[r.id] == Audit {
			f := ev.fork()
			f.rule = r.id
			r.check(f)
			ev.findings = append(ev.findings, f.findings...)
			ev.mutations = append(ev.mutations, f.mutations...)
			continue
		}
		ev.rule = r.id
		ev.audit = ev.mode == Audit
		r.check(ev)
	}
}

// results puts what the rules changed into d: the spec, the exec process and the runtime
// options.
func (ev *evaluation) results(d *Decision) error {
	if ev.specOwned {
		d.Spec = ev.spec
	}
	if ev.execOwned {
		d.Process = ev.proc
	}
	var err error
	switch {
	case ev.hcsChanged:
		d.Options, err = encodeOptions(TypeURLRunhcsOptions, ev.hcs)
	case ev.sandbox != nil:
		d.Options, err = encodeOptions(TypeURLRuntimeOptions, ev.sandbox)
	case ev.runcChanged:
		d.Options, err = encodeOptions(TypeURLRuncOptions, ev.runc)
	}
	d.Delegate = ev.delegate
	return err
}

// pins are what a start fixes for the whole pod.
func (ev *evaluation) pins(trusted bool) *Pins {
	in := ev.in
	return &Pins{
		Tenant:        ev.id.tenant,
		Trusted:       trusted,
		Isolation:     ev.isolation(),
		Namespace:     in.Namespace,
		SandboxID:     in.ID,
		KubeNamespace: ev.id.kubeNamespace,
		KubePod:       ev.id.kubePod,
		KubePodUID:    ev.id.kubePodUID,
		User:          ev.forcedUser(trusted),
	}
}

// forcedUser is the user the untrusted profile forces on the pod ("" when none is).
func (ev *evaluation) forcedUser(trusted bool) string {
	if trusted || ev.mode != Enforce {
		return ""
	}
	if ev.platform == Linux {
		return fmt.Sprintf("%d:%d", ev.p.linuxUID, ev.p.linuxGID)
	}
	return ev.p.user
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
