package policy

import (
	"reflect"
)

/*
Fields of the spec that reach the host and that no other rule inspects are denied for
untrusted workloads when set, unless untrusted.allowedFields names them: the table of
every field (policy/fields_table.go, docs/policy.md#fields) marks them "denied" with what
the runtime does with each, e.g. linux.netDevices (runc 1.4 moves a host network
interface into the container), linux.intelRdt (runc writes the host's resctrl groups),
linux.seccomp.listenerPath (runc hands the seccomp notification fd to a host socket),
windows.credentialSpec (hcsshim starts a credential guard instance with a domain
identity), windows.network.endpointList (hcsshim attaches those HNS endpoints), and the
sections of other operating systems and VM runtimes (solaris, zos, freebsd, vm; Linux:
windows), which the delegate would ignore or misread.

An Exec's process is held to the same table (process.* fields).

**Restricted Fields:** the "denied" rows of the field table

**Allowed Values:** unset, or named in untrusted.allowedFields (spec paths, e.g.
windows.credentialSpec)
*/

const ruleIDSpecFields = "untrusted.spec-fields"

var ruleSpecFields = &rule{
	id:      ruleIDSpecFields,
	threats: []string{"T19"},
	calls:   []Call{CallStart, CallCreate, CallExec},
	action:  "denial",
	summary: "spec fields that reach the host and no other rule inspects (linux.netDevices, linux.intelRdt, seccomp listenerPath, windows.credentialSpec, endpointList, other OS sections, ...: the \"denied\" rows of the field table) are denied unless untrusted.allowedFields names them",
	check:   checkSpecFields,
}

func checkSpecFields(ev *evaluation) {
	scope, v := ScopeSpec, reflect.ValueOf(ev.in.Spec)
	if ev.in.Call == CallExec {
		scope, v = ScopeProcess, reflect.ValueOf(ev.in.Process)
	}
	if v.IsNil() {
		return
	}
	for _, d := range deniedFields[scopeKey{scope, ev.platform}] {
		if d.Rule != ruleIDSpecFields || !fieldIsSet(v, d.steps) {
			continue
		}
		sp := specPath(scope, ev.platform, d.Path)
		if ev.p.allowedFields[sp] {
			continue
		}
		ev.deny(sp, "%s is set: %s; untrusted.allowedFields does not name it", sp, d.Why)
	}
}

// specPath is the config.json path of a field of scope: the name untrusted.allowedFields
// and findings use (an Exec's process.X is the spec's process.X).
func specPath(scope FieldScope, p Platform, path string) string {
	switch scope {
	case ScopeProcess:
		return "process." + path
	case ScopeResources:
		if p == Windows {
			return "windows.resources." + path
		}
		return "linux.resources." + path
	}
	return path
}
