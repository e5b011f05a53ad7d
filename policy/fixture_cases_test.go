package policy

import (
	"encoding/json"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/internal/cri"
)

// fixtureCase is one golden fixture: dir is the rule ID (or input.invalid, or decision
// for behaviour that is not one rule's), pass says which side of the rule it is on.
type fixtureCase struct {
	dir     string
	pass    bool
	name    string
	desc    string
	threats []string
	policy  string
	input   func(t testing.TB) Input
}

// secretAnnotationValue stands for a secret in an annotation value; no decision may
// repeat it.
const secretAnnotationValue = "s3cr3t-annotation-value"

func withMounts(in Input, m ...specs.Mount) Input {
	in.Spec.Mounts = append(in.Spec.Mounts, m...)
	return in
}

func withAnnotations(in Input, kv ...string) Input {
	for i := 0; i+1 < len(kv); i += 2 {
		in.Spec.Annotations[kv[i]] = kv[i+1]
	}
	return in
}

func withUser(in Input, user string) Input {
	in.Spec.Process.User.Username = user
	return in
}

func resources(t testing.TB, typeURL string, v any) *anypb.Any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: typeURL, Value: b}
}

func winUpdate(t testing.TB, r *specs.WindowsResources) Input {
	return Input{
		Call:      CallUpdate,
		Platform:  Windows,
		Namespace: cri.DefaultNamespace,
		ID:        containerID,
		Resources: resources(t, TypeURLWindowsResources, r),
		Pod:       podPins(Windows),
	}
}

func linuxUpdate(t testing.TB, r *specs.LinuxResources) Input {
	return Input{
		Call:      CallUpdate,
		Platform:  Linux,
		Namespace: cri.DefaultNamespace,
		ID:        containerID,
		Resources: resources(t, TypeURLLinuxResources, r),
		Pod:       podPins(Linux),
	}
}

func u64(v uint64) *uint64 { return &v }
func u16(v uint16) *uint16 { return &v }

func hostMount(src string) specs.Mount {
	return specs.Mount{Destination: `C:\data`, Source: src, Options: []string{"rw"}}
}

func linuxBind(src string) specs.Mount {
	return specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"rbind", "rw"}}
}

// standalone turns a Windows create into one from a direct containerd client (ctr): no
// CRI annotations, its own namespace, pinned as a standalone container.
func standalone(in Input, ns string) Input {
	in.Namespace = ns
	in.Role = cri.RoleStandalone
	in.SandboxID = ""
	in.ID = "ctr-run-1"
	for k := range in.Spec.Annotations {
		if len(k) > len("io.kubernetes.cri.") && k[:len("io.kubernetes.cri.")] == "io.kubernetes.cri." {
			delete(in.Spec.Annotations, k)
		}
	}
	in.Pod = &Pins{Tenant: "containerd:" + ns, Isolation: IsolationHyperV, Namespace: ns, SandboxID: "ctr-run-1"}
	return in
}

// fixtureAdder adds one golden fixture case: dir is the rule ID (or input.invalid, or
// decision), pass the side of the rule it is on, policy the testdata/policies file.
type fixtureAdder func(dir string, pass bool, name, policy, desc string, threats []string, in func(t testing.TB) Input)

// Policies of testdata/policies the cases name most.
const win, lin = "windows", "linux"

// T lists threat IDs.
func T(ts ...string) []string { return ts }

// fixtureCases collects every rule's cases, each from the check_<rule>_test.go beside its
// rule (pod-security-admission keeps one fixture file per check).
func fixtureCases() []fixtureCase {
	var cs []fixtureCase
	add := func(dir string, pass bool, name, policy, desc string, threats []string, in func(t testing.TB) Input) {
		cs = append(cs, fixtureCase{dir: dir, pass: pass, name: name, desc: desc, threats: threats, policy: policy, input: in})
	}
	for _, cases := range []func(fixtureAdder){
		isolationCases,
		podConsistencyCases,
		userCases,
		execUserCases,
		hostProcessCases,
		hostPathCases,
		namedPipeCases,
		diskPassthroughCases,
		devicesCases,
		annotationsCases,
		hostProgramsCases,
		stdioCases,
		rootfsCases,
		specFieldsCases,
		updateLimitsCases,
		invalidInputCases,
		decisionsCases,
	} {
		cases(add)
	}
	return cs
}
