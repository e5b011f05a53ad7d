package policy

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	"github.com/Microsoft/hcsshim/pkg/annotations"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	"github.com/isoguard/isoguard/internal/cri"
)

func TestRegistry(t *testing.T) {
	if err := validateRegistry(registry); err != nil {
		t.Fatal(err)
	}
	good := *ruleHostPath
	for name, mutate := range map[string]func(r *rule){
		"bad id":      func(r *rule) { r.id = "untrusted.HostPath" },
		"no prefix":   func(r *rule) { r.id = "hostpath" },
		"no check":    func(r *rule) { r.check = nil },
		"no calls":    func(r *rule) { r.calls = nil },
		"no threats":  func(r *rule) { r.threats = nil },
		"bad threat":  func(r *rule) { r.threats = []string{"8"} },
		"bad action":  func(r *rule) { r.action = "warn" },
		"no summary":  func(r *rule) { r.summary = "" },
		"duplicate":   func(r *rule) { r.id = ruleIsolation.id },
		"nil is fine": func(r *rule) {},
	} {
		r := good
		mutate(&r)
		err := validateRegistry([]*rule{ruleIsolation, &r})
		if (err == nil) != (name == "nil is fine") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := validateRegistry([]*rule{nil}); err == nil {
		t.Error("nil rule accepted")
	}
	// Rules() is a copy.
	rs := Rules()
	rs[0].Threats[0] = "T99"
	if Rules()[0].Threats[0] == "T99" {
		t.Error("Rules() shares the registry")
	}
	if rs[len(rs)-1].ID != "untrusted.pod-consistency" {
		t.Error("untrusted.pod-consistency must run last")
	}
}

// The docs list every rule.
func TestDocsListEveryRule(t *testing.T) {
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Rules() {
		if !strings.Contains(string(doc), "`"+r.ID+"`") {
			t.Errorf("docs/policy.md does not mention `%s`", r.ID)
		}
	}
	for _, id := range []string{RuleInternalError, RuleInvalidInput} {
		if !strings.Contains(string(doc), "`"+id+"`") {
			t.Errorf("docs/policy.md does not mention `%s`", id)
		}
	}
}

// Upstream facts the policy depends on.
func TestUpstreamFacts(t *testing.T) {
	exp := annotations.AnnotationExpansionMap()[annotations.DisableUnsafeOperations]
	if want := unsafeOperationExpansions(); !slices.Equal(exp, want[:]) {
		t.Errorf("hcsshim expands %s into %v; the policy assumes %v", annotations.DisableUnsafeOperations, exp, unsafeOperationExpansions())
	}
	if specs.VersionMajor != 1 {
		t.Errorf("runtime-spec major version %d: the resources type URLs assume 1", specs.VersionMajor)
	}
	if n := string((&runhcsopts.Options{}).ProtoReflect().Descriptor().FullName()); n != TypeURLRunhcsOptions {
		t.Errorf("runhcs options are %s", n)
	}
	if annotations.KubernetesContainerType != cri.ContainerType || annotations.KubernetesSandboxID != cri.SandboxID {
		t.Error("CRI annotation keys differ from hcsshim's")
	}
}

// A panic inside a rule becomes a denial by internal.error, in audit mode too.
func TestEvaluateRecoversPanics(t *testing.T) {
	boom := &rule{id: "untrusted.boom", threats: []string{"T13"}, calls: []Call{CallCreate}, action: "denial", summary: "panics",
		check: func(ev *evaluation) {
			var m map[string]string
			m["x"] = "y"
		}}
	for _, mode := range []string{"enforce", "audit"} {
		f, err := Parse([]byte(header + "mode: " + mode + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := compile(f, Windows, []*rule{ruleIsolation, boom})
		if err != nil {
			t.Fatal(err)
		}
		d := p.Evaluate(winCreate(t))
		if d.Allowed || len(d.Denials) != 1 || d.Denials[0].Rule != RuleInternalError || d.Changed() {
			t.Fatalf("%s: %+v", mode, d)
		}
		err = d.Error()
		if !errors.Is(err, ErrDenied) || !strings.HasPrefix(err.Error(), "denied by rule internal.error: policy evaluation failed") {
			t.Errorf("%s: %v", mode, err)
		}
	}
	// A nil policy panics inside Evaluate and is recovered as well.
	var p *Policy
	if d := p.Evaluate(winCreate(t)); d.Allowed {
		t.Error("nil policy allowed")
	}
}

func TestDecisionError(t *testing.T) {
	d := Decision{Allowed: true}
	if d.Error() != nil {
		t.Error("allowed decision has an error")
	}
	d = Decision{Tenant: "default", Denials: []Finding{
		{Rule: "untrusted.hostpath", Reason: `mount C:\Users\x\.ssh is not allowed`},
		{Rule: "untrusted.user", Reason: "audited", Audit: true},
		{Rule: "untrusted.named-pipe", Reason: `mount of named pipe \\.\pipe\x is not allowed`},
	}}
	want := `denied by rule untrusted.hostpath: mount C:\Users\x\.ssh is not allowed; denied by rule untrusted.named-pipe: mount of named pipe \\.\pipe\x is not allowed (tenant "default")`
	err := d.Error()
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	var de *DeniedError
	if !errors.As(err, &de) || len(de.Denials) != 2 || de.Tenant != "default" {
		t.Errorf("%+v", de)
	}
}

// Results share nothing that Evaluate changed with the input, and each mutation is in
// the results.
func TestResultsApplyMutations(t *testing.T) {
	p := (policyCache{}).get(t, "windows")
	in := winCreate(t)
	in.Spec.Process.User.Username = "ContainerAdministrator"
	in.Spec.Annotations["io.microsoft.virtualmachine.kerneldrivers"] = `C:\drivers`
	d := p.Evaluate(in)
	if !d.Allowed || d.Spec == nil || d.Options == nil {
		t.Fatalf("%+v", d)
	}
	if d.Spec.Process.User.Username != "ContainerUser" || in.Spec.Process.User.Username != "ContainerAdministrator" {
		t.Error("user")
	}
	if _, ok := d.Spec.Annotations["io.microsoft.virtualmachine.kerneldrivers"]; ok || d.Spec.Annotations["io.microsoft.disable-unsafe-operations"] != "true" {
		t.Error("annotations")
	}
	if in.Spec.Annotations["io.microsoft.virtualmachine.kerneldrivers"] == "" || in.Spec.Windows.HyperV != nil || d.Spec.Windows.HyperV == nil {
		t.Error("input modified or hyperv missing")
	}
	var o runhcsopts.Options
	if err := proto.Unmarshal(d.Options.Value, &o); err != nil || o.SandboxIsolation != runhcsopts.Options_HYPERVISOR || !o.ScaleCpuLimitsToSandbox || d.Options.TypeUrl != TypeURLRunhcsOptions {
		t.Errorf("options %v %+v", err, &o)
	}
	// Enforced decisions are stable: evaluating the result again changes nothing more.
	in2 := in
	in2.Spec, in2.Options = d.Spec, d.Options
	d2 := p.Evaluate(in2)
	if !d2.Allowed || len(d2.Mutations) != 0 || d2.Changed() {
		t.Errorf("not idempotent: %+v", d2.Mutations)
	}
}
