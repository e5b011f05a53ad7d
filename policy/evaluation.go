package policy

import (
	"fmt"
	"slices"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	rtopts "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	"github.com/isoguard/isoguard/shim/hooks"
)

// evaluation is one call being decided: the input, what the rules found and the working results.
// Rules judge ev.in (the input as received) and write through the *W methods, which copy
// what they change (copy on write): the input is never modified.
type evaluation struct {
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

	// Working results. owned = this evaluation made its own copy.
	spec                                     *specs.Spec
	specOwned, annOwned, procOwned, winOwned bool
	hcs                                      *runhcsopts.Options
	hcsOwned, hcsChanged                     bool
	runc                                     *runcopts.Options
	runcOwned, runcChanged                   bool
	sandbox                                  *rtopts.Options // Linux: the sandbox shim's options, when set
	delegate                                 *hooks.Delegate // start: the delegate the rules chose
	proc                                     *specs.Process  // exec
	execOwned                                bool

	findings  []Finding
	mutations []Mutation

	mounts []mountInfo // classification of in.Spec.Mounts, computed once (mountInfos)
}

func (ev *evaluation) deny(field, format string, args ...any) {
	ev.findings = append(ev.findings, Finding{Rule: ev.rule, Field: field, Reason: fmt.Sprintf(format, args...), Audit: ev.audit})
}

func (ev *evaluation) mutate(field, old, new, reason string) {
	ev.mutations = append(ev.mutations, Mutation{Rule: ev.rule, Field: field, Old: old, New: new, Reason: reason, Audit: ev.audit})
}

// specW returns the working spec, copied from the input (or the parent evaluation) first.
func (ev *evaluation) specW() *specs.Spec {
	if !ev.specOwned {
		c := *ev.spec
		ev.spec = &c
		ev.specOwned = true
		ev.annOwned, ev.procOwned, ev.winOwned = false, false, false
	}
	return ev.spec
}

// annotationsW returns the working spec's annotations, a copy of the input's.
func (ev *evaluation) annotationsW() map[string]string {
	s := ev.specW()
	if !ev.annOwned {
		m := make(map[string]string, len(s.Annotations)+2)
		for k, v := range s.Annotations {
			m[k] = v
		}
		s.Annotations = m
		ev.annOwned = true
	}
	return s.Annotations
}

// processW returns the working spec's process (nil when the spec has none).
func (ev *evaluation) processW() *specs.Process {
	s := ev.specW()
	if s.Process == nil {
		return nil
	}
	if !ev.procOwned {
		c := *s.Process
		c.User.AdditionalGids = slices.Clone(c.User.AdditionalGids)
		s.Process = &c
		ev.procOwned = true
	}
	return s.Process
}

// windowsW returns the working spec's windows section, created when absent.
func (ev *evaluation) windowsW() *specs.Windows {
	s := ev.specW()
	if !ev.winOwned {
		var c specs.Windows
		if s.Windows != nil {
			c = *s.Windows
		}
		s.Windows = &c
		ev.winOwned = true
	}
	return s.Windows
}

// execW returns the working exec process.
func (ev *evaluation) execW() *specs.Process {
	if !ev.execOwned {
		c := *ev.proc
		c.User.AdditionalGids = slices.Clone(c.User.AdditionalGids)
		ev.proc = &c
		ev.execOwned = true
	}
	return ev.proc
}

// hcsW returns the working runhcs options (created when there were none).
func (ev *evaluation) hcsW() *runhcsopts.Options {
	if !ev.hcsOwned {
		if ev.hcs == nil {
			ev.hcs = &runhcsopts.Options{}
		} else {
			ev.hcs = proto.Clone(ev.hcs).(*runhcsopts.Options)
		}
		ev.hcsOwned = true
	}
	ev.hcsChanged = true
	return ev.hcs
}

// runcW returns the working runc options (created when there were none).
func (ev *evaluation) runcW() *runcopts.Options {
	if !ev.runcOwned {
		if ev.runc == nil {
			ev.runc = &runcopts.Options{}
		} else {
			ev.runc = proto.Clone(ev.runc).(*runcopts.Options)
		}
		ev.runcOwned = true
	}
	ev.runcChanged = true
	return ev.runc
}

// fork returns an evaluation for a rule in audit mode: it sees the results so far, and what it
// writes is copied again and then dropped.
func (ev *evaluation) fork() *evaluation {
	c := *ev
	c.specOwned, c.annOwned, c.procOwned, c.winOwned = false, false, false, false
	c.hcsOwned, c.runcOwned, c.execOwned = false, false, false
	c.findings, c.mutations = nil, nil
	c.audit = true
	return &c
}

// isolation is the isolation the call ends up with: what the rules made of it in
// enforce mode, the input's in audit mode (nothing is applied then).
func (ev *evaluation) isolation() string {
	spec, hcs, runc := ev.spec, ev.hcs, ev.runc
	if ev.mode == Audit {
		spec, hcs, runc = ev.in.Spec, ev.hcsIn, ev.runcIn
	}
	if ev.platform == Linux {
		sandbox := ev.sandbox
		if ev.mode == Audit {
			sandbox = nil
		}
		return linuxIsolation(runc, sandbox, ev.p.sandbox.Shim)
	}
	return windowsIsolation(hcs, spec != nil && spec.Windows != nil && spec.Windows.HyperV != nil)
}

// annotation returns an annotation of the input spec.
func (ev *evaluation) annotation(key string) (string, bool) {
	if ev.in.Spec == nil {
		return "", false
	}
	v, ok := ev.in.Spec.Annotations[key]
	return v, ok
}
