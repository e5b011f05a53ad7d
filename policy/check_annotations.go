package policy

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/Microsoft/hcsshim/pkg/annotations"
)

/*
Runtime-specific annotations of untrusted workloads may only tighten. hcsshim reads dozens
of io.microsoft.* / microsoft.com/* annotations that shape the utility VM or reach the host
(pkg/annotations/annotations.go, internal/annotations: kernel drivers, dump directory,
boot files path, console pipe, Hyper-V socket service table, additional registry keys,
device extensions, ncproxy, ...); runsc reads dev.gvisor.* (flag overrides, mount hints).

  - A controlled key (prefix io.microsoft., microsoft.com/ or dev.gvisor., ASCII case
    ignored) that is not on untrusted.annotations.allowed is stripped (a mutation) or, with
    onDisallowed: deny, denied. Update requests cannot be rewritten: a disallowed key there
    is always denied.
  - Windows: io.microsoft.virtualmachine.computetopology.processor.count and
    .memory.sizeinmb are kept but clamped to limits.uvmProcessorCount / uvmMemoryMB when
    those are set (otherwise they are ordinary controlled keys); a value that is not a
    positive integer is stripped.
  - Windows: io.microsoft.disable-unsafe-operations is forced to "true" (it disables gMSA,
    writable file shares, VSMB direct map and HostProcess containers), and the keys it
    expands into are forced to "true" where present: hcsshim fails the Create on an
    expansion whose value differs (internal/oci/annotations.go ProcessAnnotations).
    Disabling writable file shares makes hcsshim refuse every writable host mount of the
    pod (internal/uvm/vsmb.go: "adding writable shares is denied"), emptyDir and the
    termination log included; with untrusted.allowWritableFileShares the three other
    expansions are forced one by one instead, and a disable-unsafe-operations value other
    than "true" is removed (it would conflict with them).
  - Windows: runhcs turns runtime options into annotations where the spec has none
    (internal/oci/uvm.go UpdateSpecFromOptions), so the same rules apply to them:
    Options.DefaultContainerAnnotations entries, BootFilesRootPath (= bootfilesrootpath),
    NCProxyAddr (= io.microsoft.network.ncproxy) are stripped unless their key is allowed;
    VmProcessorCount / VmMemorySizeInMb are clamped to the UVM limits.
  - microsoft.com/hostprocess-container and hostprocess-inherit-user belong to
    untrusted.hostprocess (CRI sets the first to "false" on every Windows pod).

Annotation values are never recorded (they may be secrets) unless they are numbers or
booleans.

**Restricted Fields:**

spec.annotations[controlled keys], UpdateTaskRequest.annotations[controlled keys]
options.DefaultContainerAnnotations, options.BootFilesRootPath, options.NCProxyAddr,
options.VmProcessorCount, options.VmMemorySizeInMb (Windows)

**Allowed Values:** keys on the allowlist; clamped UVM sizes; disable-unsafe-operations "true"
(or, with allowWritableFileShares, gmsa.disable, virtualSMB.nodirectmap and
disable-hostprocess-container "true")
*/

var ruleAnnotations = &rule{
	id:      "untrusted.annotations",
	threats: []string{"T11"},
	calls:   []Call{CallStart, CallCreate, CallUpdate},
	action:  "mutation or denial",
	summary: "io.microsoft.* / microsoft.com/* / dev.gvisor.* annotations not on the allowlist are stripped or denied; UVM CPU/memory clamped; io.microsoft.disable-unsafe-operations forced to true",
	check:   checkAnnotations,
}

// controlledPrefixes are the annotation prefixes this rule controls: hcsshim's
// (pkg/annotations: io.microsoft.*, microsoft.com/*) and gVisor's (dev.gvisor.*: flag
// overrides and mount hints read by runsc).
var controlledPrefixes = [...]string{"io.microsoft.", "microsoft.com/", "dev.gvisor."}

// ControlledPrefixes returns the annotation prefixes rule untrusted.annotations controls.
func ControlledPrefixes() []string { return slices.Clone(controlledPrefixes[:]) }

// isControlledKey reports whether an annotation key has a controlled prefix (compared
// ASCII case-insensitively: stricter than the runtimes, which compare exactly).
func isControlledKey(k string) bool {
	for _, p := range controlledPrefixes {
		if hasPrefixFold(k, p) {
			return true
		}
	}
	return false
}

// unsafeOperationExpansions returns annotations.AnnotationExpansionMap()[
// DisableUnsafeOperations] without building the map (a test keeps them equal).
func unsafeOperationExpansions() [4]string {
	return [4]string{
		annotations.WCOWDisableGMSA,
		annotations.DisableWritableFileShares,
		annotations.VSMBNoDirectMap,
		annotations.DisableHostProcessContainer,
	}
}

func isUnsafeOperationExpansion(k string) bool {
	for _, e := range unsafeOperationExpansions() {
		if k == e {
			return true
		}
	}
	return false
}

func (p *Policy) annotationAllowed(k string) bool {
	for _, a := range p.annAllowed {
		if prefix, ok := strings.CutSuffix(a, "*"); ok {
			if strings.HasPrefix(k, prefix) {
				return true
			}
		} else if k == a {
			return true
		}
	}
	return false
}

// uvmLimit returns the clamp for a UVM sizing key on Windows (0 = not a clamped key or no
// limit configured).
func (p *Policy) uvmLimit(k string) uint64 {
	if p.platform != Windows {
		return 0
	}
	switch k {
	case annotations.ProcessorCount:
		return uint64(p.limits.UVMProcessorCount)
	case annotations.MemorySizeInMB:
		return p.limits.UVMMemoryMB
	}
	return 0
}

// controlledKeys returns the controlled keys of m, sorted (findings come out in a stable
// order).
func controlledKeys(m map[string]string) []string {
	var keys []string
	for k := range m {
		if isControlledKey(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// annotationMap is one place annotations live: the spec, or the options' defaults.
type annotationMap struct {
	field string                   // "annotations" or "options.DefaultContainerAnnotations"
	in    map[string]string        // as received
	w     func() map[string]string // the working copy
}

func checkAnnotations(ev *evaluation) {
	if ev.in.Call == CallUpdate {
		for _, k := range controlledKeys(ev.in.UpdateAnnotations) {
			if !ev.p.annotationAllowed(k) {
				ev.deny("updateAnnotations["+k+"]", "annotation %s is not allowed (an update cannot be rewritten)", k)
			}
		}
		return
	}
	spec := annotationMap{field: "annotations", in: ev.in.Spec.Annotations, w: ev.annotationsW}
	checkAnnotationMap(ev, spec)
	if ev.platform != Windows {
		return
	}
	if ev.hcsIn != nil {
		checkAnnotationMap(ev, annotationMap{field: "options.DefaultContainerAnnotations", in: ev.hcsIn.DefaultContainerAnnotations, w: func() map[string]string {
			o := ev.hcsW()
			return o.DefaultContainerAnnotations
		}})
		checkAnnotationOptions(ev)
	}
	for _, key := range ev.p.forcedAnnotations() {
		if v, ok := spec.in[key]; !ok || v != "true" {
			old := "(none)"
			if ok {
				old = redact(v)
			}
			spec.w()[key] = "true"
			reason := fmt.Sprintf("unsafe operations (gMSA, writable file shares, VSMB direct map, HostProcess) are disabled for tenant %q", ev.id.tenant)
			if ev.p.allowWritable {
				reason = fmt.Sprintf("%s is forced for tenant %q (untrusted.allowWritableFileShares keeps writable shares, so io.microsoft.disable-unsafe-operations is not used)", key, ev.id.tenant)
			}
			ev.mutate("annotations["+key+"]", old, "true", reason)
		}
	}
}

// isForcedAnnotation reports whether k is one of forcedAnnotations.
func (p *Policy) isForcedAnnotation(k string) bool {
	if p.allowWritable {
		return k == annotations.WCOWDisableGMSA || k == annotations.VSMBNoDirectMap || k == annotations.DisableHostProcessContainer
	}
	return k == annotations.DisableUnsafeOperations
}

// forcedAnnotations are the Windows annotations forced to "true": the expansion of
// io.microsoft.disable-unsafe-operations, or (allowWritableFileShares) its parts but
// writable file shares.
func (p *Policy) forcedAnnotations() []string {
	if p.allowWritable {
		return []string{annotations.WCOWDisableGMSA, annotations.VSMBNoDirectMap, annotations.DisableHostProcessContainer}
	}
	return []string{annotations.DisableUnsafeOperations}
}

func checkAnnotationMap(ev *evaluation, am annotationMap) {
	p := ev.p
	win := ev.platform == Windows
	for _, k := range controlledKeys(am.in) {
		v := am.in[k]
		field := am.field + "[" + k + "]"
		switch {
		case k == annotations.HostProcessContainer || k == annotations.HostProcessInheritUser:
			continue // untrusted.hostprocess
		case win && p.isForcedAnnotation(k):
			continue // forced on the spec by checkAnnotations; the spec's value wins over a default
		case win && !p.allowWritable && isUnsafeOperationExpansion(k):
			if v != "true" {
				am.w()[k] = "true"
				ev.mutate(field, redact(v), "true", "expansions of io.microsoft.disable-unsafe-operations must be \"true\" (hcsshim refuses a conflicting value)")
			}
			continue
		case win && p.allowWritable && k == annotations.DisableUnsafeOperations:
			if v != "true" {
				delete(am.w(), k)
				ev.mutate(field, redact(v), "(removed)", "it would conflict with the protections forced one by one (hcsshim refuses a conflicting expansion)")
			}
			continue
		}
		if limit := p.uvmLimit(k); limit > 0 {
			n, err := strconv.ParseUint(v, 10, 64)
			switch {
			case err != nil || n == 0:
				delete(am.w(), k)
				ev.mutate(field, redact(v), "(removed)", fmt.Sprintf("annotation %s is not a positive integer", k))
			case n > limit:
				am.w()[k] = strconv.FormatUint(limit, 10)
				ev.mutate(field, v, strconv.FormatUint(limit, 10), fmt.Sprintf("annotation %s is clamped to the limit for tenant %q", k, ev.id.tenant))
			}
			continue
		}
		if p.annotationAllowed(k) {
			continue
		}
		if p.annDeny {
			ev.deny(field, "annotation %s is not allowed", k)
			continue
		}
		delete(am.w(), k)
		ev.mutate(field, redact(v), "(removed)", fmt.Sprintf("annotation %s is not allowed for tenant %q", k, ev.id.tenant))
	}
}

// checkAnnotationOptions applies the annotation rules to the runhcs options that runhcs
// turns into annotations.
func checkAnnotationOptions(ev *evaluation) {
	o, p := ev.hcsIn, ev.p
	for _, f := range [...]struct {
		field, key, value string
		clear             func()
	}{
		{"options.BootFilesRootPath", annotations.BootFilesRootPath, o.GetBootFilesRootPath(), func() { ev.hcsW().BootFilesRootPath = "" }},
		{"options.NCProxyAddr", annotations.NetworkConfigProxy, o.GetNCProxyAddr(), func() { ev.hcsW().NCProxyAddr = "" }},
	} {
		if f.value == "" || p.annotationAllowed(f.key) {
			continue
		}
		if p.annDeny {
			ev.deny(f.field, "runtime option %s (annotation %s) is not allowed", f.field, f.key)
			continue
		}
		f.clear()
		ev.mutate(f.field, "(redacted)", "(removed)", fmt.Sprintf("runtime option %s (annotation %s) is not allowed for tenant %q", f.field, f.key, ev.id.tenant))
	}
	clamp := func(field string, v int32, limit uint64, set func(int32)) {
		switch {
		case v < 0:
			set(0)
			ev.mutate(field, strconv.Itoa(int(v)), "0", "a negative size is not allowed")
		case limit > 0 && uint64(v) > limit:
			set(int32(min(limit, 1<<31-1)))
			ev.mutate(field, strconv.Itoa(int(v)), strconv.FormatUint(min(limit, 1<<31-1), 10), fmt.Sprintf("clamped to the limit for tenant %q", ev.id.tenant))
		}
	}
	clamp("options.VmProcessorCount", o.GetVmProcessorCount(), uint64(p.limits.UVMProcessorCount), func(n int32) { ev.hcsW().VmProcessorCount = n })
	clamp("options.VmMemorySizeInMb", o.GetVmMemorySizeInMb(), p.limits.UVMMemoryMB, func(n int32) { ev.hcsW().VmMemorySizeInMb = n })
}
