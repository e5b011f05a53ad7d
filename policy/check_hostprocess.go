package policy

import (
	"strconv"

	"github.com/Microsoft/hcsshim/pkg/annotations"
)

/*
Untrusted workloads may not be HostProcess containers: a HostProcess container runs on the
host (no silo, no VM) with host network and file system, and with
microsoft.com/hostprocess-inherit-user as the shim's own user (SYSTEM).

hcsshim reads the annotations with strconv.ParseBool semantics ("1", "t", "TRUE", ...
count as true; internal/oci/annotations.go ParseAnnotationsBool), and runhcs adds
Options.DefaultContainerAnnotations for keys the spec lacks (internal/oci/uvm.go
UpdateSpecFromOptions), so both places are checked. A value that is not a valid false
boolean is denied as well: the policy does not guess what a runtime makes of it.

**Restricted Fields:**

spec.annotations["microsoft.com/hostprocess-container"]
spec.annotations["microsoft.com/hostprocess-inherit-user"]
options.DefaultContainerAnnotations[same keys]

**Allowed Values:** absent, or a false boolean ("false", "0", "f", "F", "FALSE", "False")
*/

var ruleHostProcess = &rule{
	id:        "untrusted.hostprocess",
	threats:   []string{"T7"},
	platforms: []Platform{Windows},
	calls:     []Call{CallStart, CallCreate},
	action:    "denial",
	summary:   "HostProcess containers (microsoft.com/hostprocess-container, hostprocess-inherit-user) are denied",
	check:     checkHostProcess,
}

func checkHostProcess(ev *evaluation) {
	for _, key := range [...]string{annotations.HostProcessContainer, annotations.HostProcessInheritUser} {
		v, ok := ev.annotation(key)
		where := "annotations"
		if !ok {
			if v, ok = ev.hcsIn.GetDefaultContainerAnnotations()[key]; !ok {
				continue
			}
			where = "options.DefaultContainerAnnotations"
		}
		if b, err := strconv.ParseBool(v); err == nil && !b {
			continue
		}
		ev.deny(where+"["+key+"]", "HostProcess containers (%s=%s) are not allowed", key, redact(v))
	}
}
