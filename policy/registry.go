package policy

import (
	"fmt"
	"slices"
)

// rule is one check of the untrusted profile. Each lives in its own check_<name>.go with a
// comment block stating the restricted fields and the allowed values.
type rule struct {
	id        string
	threats   []string   // rows of docs/threat-model.md, e.g. "T8"
	platforms []Platform // where it applies; nil = both
	calls     []Call     // the calls it inspects
	action    string     // "mutation", "denial" or "mutation or denial"
	summary   string     // one line for docs and diagnostics
	// check inspects ev.in (the input as received) and records findings and mutations
	// through ev. It runs only for untrusted workloads.
	check func(ev *evaluation)
}

// RuleInfo describes one rule of the registry.
type RuleInfo struct {
	ID        string
	Threats   []string
	Platforms []Platform
	Calls     []Call
	Action    string
	Summary   string
}

// registry is every rule in evaluation order. It is built once at package initialisation,
// validated (validateRegistry panics on a malformed entry, so a bad ID cannot ship: every
// test binary fails to start) and never modified.
var registry = mustRegistry([]*rule{
	ruleIsolation,
	ruleHostProcess,
	ruleUser,
	ruleExecUser,
	ruleHostPath,
	ruleNamedPipe,
	ruleDiskPassthrough,
	ruleDevices,
	ruleAnnotations,
	ruleHostPrograms,
	ruleStdio,
	ruleRootfs,
	ruleSpecFields,
	ruleUpdateLimits,
	// Last: it compares the pod's pins with the result of every rule above.
	rulePodConsistency,
})

func mustRegistry(rules []*rule) []*rule {
	if err := validateRegistry(rules); err != nil {
		panic("policy: invalid rule registry: " + err.Error())
	}
	return rules
}

func validateRegistry(rules []*rule) error {
	seen := map[string]bool{}
	for i, r := range rules {
		if r == nil {
			return fmt.Errorf("rule %d is nil", i)
		}
		// IDs are stable: they appear in audit records, denials and policy files.
		if !isRuleID(r.id) {
			return fmt.Errorf("rule ID %q is not \"untrusted.\" and a lower-case, dash-separated name", r.id)
		}
		if seen[r.id] {
			return fmt.Errorf("rule ID %q registered twice", r.id)
		}
		seen[r.id] = true
		if r.check == nil {
			return fmt.Errorf("rule %s has no check", r.id)
		}
		if len(r.calls) == 0 {
			return fmt.Errorf("rule %s inspects no call", r.id)
		}
		if len(r.threats) == 0 {
			return fmt.Errorf("rule %s answers no threat", r.id)
		}
		for _, t := range r.threats {
			if !isThreatID(t) {
				return fmt.Errorf("rule %s: threat %q is not T and a number", r.id, t)
			}
		}
		switch r.action {
		case "mutation", "denial", "mutation or denial":
		default:
			return fmt.Errorf("rule %s: action %q", r.id, r.action)
		}
		if r.summary == "" {
			return fmt.Errorf("rule %s has no summary", r.id)
		}
	}
	return nil
}

// Rules describes every rule of the registry, in evaluation order.
func Rules() []RuleInfo {
	out := make([]RuleInfo, 0, len(registry))
	for _, r := range registry {
		out = append(out, RuleInfo{
			ID:        r.id,
			Threats:   slices.Clone(r.threats),
			Platforms: slices.Clone(r.platforms),
			Calls:     slices.Clone(r.calls),
			Action:    r.action,
			Summary:   r.summary,
		})
	}
	return out
}

// ruleByID returns the registry's rule with that ID, or nil.
func ruleByID(id string) *rule {
	for _, r := range registry {
		if r.id == id {
			return r
		}
	}
	return nil
}

func (r *rule) appliesTo(p Platform, c Call) bool {
	return (r.platforms == nil || slices.Contains(r.platforms, p)) && slices.Contains(r.calls, c)
}
