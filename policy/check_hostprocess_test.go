package policy

import (
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
)

// Golden fixture cases of rule untrusted.hostprocess (testdata/untrusted.hostprocess/).
func hostProcessCases(add fixtureAdder) {
	const hp = "untrusted.hostprocess"
	add(hp, true, "hostprocess-false", win, `CRI's microsoft.com/hostprocess-container="false"`, nil, winCreate)
	add(hp, false, "hostprocess-true", win, "a HostProcess container", T("T7"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "microsoft.com/hostprocess-container", "true")
	})
	add(hp, false, "hostprocess-sandbox-start", win, "a HostProcess pod's sandbox start", T("T7"), func(t testing.TB) Input {
		in := winStart(t)
		in.Spec.Annotations["microsoft.com/hostprocess-container"] = "true"
		return in
	})
	add(hp, false, "hostprocess-1", win, `"1" (strconv.ParseBool true)`, T("T7"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "microsoft.com/hostprocess-container", "1")
	})
	add(hp, false, "hostprocess-garbage", win, "a value that is not a boolean: denied (not guessed)", T("T7"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "microsoft.com/hostprocess-container", "yes please")
	})
	add(hp, false, "inherit-user", win, "microsoft.com/hostprocess-inherit-user=true (SYSTEM)", T("T7"), func(t testing.TB) Input {
		return withAnnotations(winCreate(t), "microsoft.com/hostprocess-inherit-user", "true")
	})
	add(hp, false, "options-default-annotation", win, "HostProcess through the runtime options' DefaultContainerAnnotations", T("T7"), func(t testing.TB) Input {
		in := winCreate(t)
		delete(in.Spec.Annotations, "microsoft.com/hostprocess-container")
		in.Options = anyOf(t, TypeURLRunhcsOptions, &runhcsopts.Options{DefaultContainerAnnotations: map[string]string{"microsoft.com/hostprocess-container": "true"}})
		return in
	})
}
