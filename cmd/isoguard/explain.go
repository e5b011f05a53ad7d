package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/internal/enforce"
	"github.com/isoguard/isoguard/policy"
)

// Runtime options types explain understands in JSON form (registered by these imports).
var (
	_ = runhcsopts.Options{}
	_ = runcopts.Options{}
)

// explanation is what explain prints with --json.
type explanation struct {
	Bundle    string           `json:"bundle"`
	Decisions []explainedCall  `json:"decisions"`
	Pins      *policy.Pins     `json:"pins,omitempty"`
	Options   *json.RawMessage `json:"options,omitempty"`
}

type explainedCall struct {
	Call      policy.Call       `json:"call"`
	Tenant    string            `json:"tenant"`
	Trusted   bool              `json:"trusted"`
	Mode      policy.Mode       `json:"mode"`
	Allowed   bool              `json:"allowed"`
	Denials   []policy.Finding  `json:"denials,omitempty"`
	Mutations []policy.Mutation `json:"mutations,omitempty"`
}

// explainArgs are explain's flags.
type explainArgs struct {
	policy, bundle, sandboxBundle, options, namespace, id, platform string
	platformSet, json                                               bool
}

const explainSynopsis = `--policy FILE --bundle DIR [--options FILE] [--sandbox-bundle DIR] [--namespace NS] [--id ID] [--json]

Prints what the wrapper would decide for the container in DIR (its config.json) and the exact
changes, running nothing and changing no file. A sandbox or standalone container is explained
as its start then its Create; a pod's workload container needs --sandbox-bundle (its pod's
sandbox bundle) for the pod's pins. --options: the runtime options, as protobuf Any (binary)
or JSON ({"@type": "containerd.runhcs.v1.Options", "sandboxIsolation": "PROCESS", ...}).
Exit 0 allowed, 3 denied, 1 error, 2 usage.`

func runExplain(args []string, stdout, stderr io.Writer) int {
	fs := newCommand("isoguard explain", explainSynopsis, stderr)
	var a explainArgs
	fs.StringVar(&a.policy, "policy", enforce.ConfigPath(), "node policy file")
	fs.StringVar(&a.bundle, "bundle", "", "bundle directory holding config.json (required)")
	fs.StringVar(&a.sandboxBundle, "sandbox-bundle", "", "for a pod's workload container: the pod sandbox's bundle")
	fs.StringVar(&a.options, "options", "", "runtime options file (protobuf Any or JSON)")
	fs.StringVar(&a.namespace, "namespace", cri.DefaultNamespace, "containerd namespace")
	fs.StringVar(&a.id, "id", "", "container id (default: the bundle directory's name)")
	fs.StringVar(&a.platform, "platform", "", "the node's OS for a policy that names no platform (default: this machine's)")
	fs.BoolVar(&a.json, "json", false, "print the decisions as JSON")
	if code, done := fs.parse(args, stdout); done {
		return code
	}
	if a.bundle == "" {
		fmt.Fprintln(stderr, "isoguard explain: --bundle DIR is required\nRun 'isoguard explain --help' for the flags.")
		return exitUsage
	}
	a.platformSet = flagSet(fs.FlagSet, "platform")
	if a.id == "" {
		a.id = filepath.Base(filepath.Clean(a.bundle))
	}
	out, allowed, code, err := explain(a)
	if err != nil {
		fmt.Fprintf(stderr, "isoguard explain: %v\n", err)
		return code
	}
	if a.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	} else {
		printExplanation(stdout, out)
	}
	if !allowed {
		return exitDenied
	}
	return exitOK
}

// explain evaluates the calls the wrapper would see for the bundle, in order, stopping
// at the first denial. code is the exit code that goes with err.
func explain(a explainArgs) (out explanation, allowed bool, code int, err error) {
	out.Bundle = a.bundle
	_, pol, err := loadPolicy(a.policy, policy.Platform(a.platform), a.platformSet)
	if err != nil {
		return out, false, exitFail, err
	}
	read, err := bundle.ReadSpec(a.bundle)
	if err != nil {
		return out, false, exitFail, err
	}
	spec := read.Spec
	var opts *anypb.Any
	if a.options != "" {
		if opts, err = readOptions(a.options); err != nil {
			return out, false, exitFail, fmt.Errorf("options %s: %w", a.options, err)
		}
	}
	start := enforce.NewInput(policy.CallStart, a.namespace, a.id, spec, nil)
	start.Options = opts
	calls := []policy.Input{start}
	if start.Role == cri.RoleContainer {
		if calls, code, err = workloadCalls(pol, a, start, opts); err != nil {
			return out, false, code, err
		}
		out.Pins = calls[0].Pod
	}
	allowed = true
	for i := 0; i < len(calls); i++ {
		in := calls[i]
		d := pol.Evaluate(in)
		out.Decisions = append(out.Decisions, explainedCall{Call: d.Call, Tenant: d.Tenant, Trusted: d.Trusted, Mode: d.Mode, Allowed: d.Allowed, Denials: d.Denials, Mutations: d.Mutations})
		if !d.Allowed {
			return out, false, exitOK, nil
		}
		if in.Call == policy.CallStart {
			// The Create that follows a start sees what start wrote and pinned.
			out.Pins = d.Pins
			next := enforce.NewInput(policy.CallCreate, a.namespace, a.id, spec, d.Pins)
			if d.Spec != nil {
				next.Spec = d.Spec
			}
			next.Options = opts
			calls = append(calls[:i+1], next)
		}
		if d.Options != nil {
			if j, err := protojson.Marshal(d.Options); err == nil {
				raw := json.RawMessage(j)
				out.Options = &raw
			}
		}
	}
	return out, allowed, exitOK, nil
}

// workloadCalls are a workload container's join and Create, with the pins its pod's
// sandbox would get at start.
func workloadCalls(pol *policy.Policy, a explainArgs, start policy.Input, opts *anypb.Any) ([]policy.Input, int, error) {
	if a.sandboxBundle == "" {
		return nil, exitUsage, fmt.Errorf("this is a workload container of pod %s: pass --sandbox-bundle with the pod sandbox's bundle", start.SandboxID)
	}
	sb, err := bundle.ReadSpec(a.sandboxBundle)
	if err != nil {
		return nil, exitFail, fmt.Errorf("sandbox: %w", err)
	}
	sbSpec := sb.Spec
	sbStart := enforce.NewInput(policy.CallStart, a.namespace, filepath.Base(filepath.Clean(a.sandboxBundle)), sbSpec, nil)
	sbStart.Options = opts
	d := pol.Evaluate(sbStart)
	if d.Pins == nil {
		return nil, exitDenied, fmt.Errorf("the pod's sandbox would not start: %v", d.Error())
	}
	join := enforce.NewInput(policy.CallJoin, a.namespace, a.id, start.Spec, d.Pins)
	create := enforce.NewInput(policy.CallCreate, a.namespace, a.id, start.Spec, d.Pins)
	create.Options = opts
	return []policy.Input{join, create}, exitOK, nil
}

func printExplanation(w io.Writer, e explanation) {
	for _, d := range e.Decisions {
		verdict := "ALLOWED"
		if !d.Allowed {
			verdict = "DENIED"
		}
		trust := "untrusted"
		if d.Trusted {
			trust = "trusted"
		}
		fmt.Fprintf(w, "%s: %s (tenant %q, %s, mode %s)\n", d.Call, verdict, d.Tenant, trust, d.Mode)
		for _, f := range d.Denials {
			fmt.Fprintf(w, "  deny   %s: %s%s\n", f.Rule, f.Reason, auditOnly(f.Audit))
		}
		for _, m := range d.Mutations {
			fmt.Fprintf(w, "  change %s: %s: %q -> %q%s\n", m.Rule, m.Field, m.Old, m.New, auditOnly(m.Audit))
		}
		if len(d.Denials) == 0 && len(d.Mutations) == 0 {
			fmt.Fprintln(w, "  no changes")
		}
	}
	if e.Pins != nil {
		fmt.Fprintf(w, "pod pins: tenant %q, isolation %q\n", e.Pins.Tenant, e.Pins.Isolation)
	}
	if e.Options != nil {
		fmt.Fprintf(w, "runtime options the delegate would get: %s\n", strings.TrimSpace(string(*e.Options)))
	}
}

func auditOnly(audit bool) string {
	if audit {
		return " [audit only]"
	}
	return ""
}

// readOptions reads runtime options: a binary protobuf Any, or protojson of an Any.
func readOptions(path string) (*anypb.Any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if trimmed := strings.TrimSpace(string(data)); strings.HasPrefix(trimmed, "{") {
		var a anypb.Any
		uo := protojson.UnmarshalOptions{DiscardUnknown: false, Resolver: prefixlessResolver{}}
		if err := uo.Unmarshal(data, &a); err != nil {
			return nil, fmt.Errorf("not a JSON Any with a known @type: %w", err)
		}
		// containerd's type URLs carry no type.googleapis.com/ prefix.
		a.TypeUrl = strings.TrimPrefix(a.TypeUrl, "type.googleapis.com/")
		return &a, nil
	}
	var a anypb.Any
	if err := proto.Unmarshal(data, &a); err != nil || a.TypeUrl == "" {
		return nil, fmt.Errorf("neither JSON nor a protobuf Any")
	}
	return &a, nil
}

// prefixlessResolver resolves "containerd.runhcs.v1.Options" as well as the
// "type.googleapis.com/..." form.
type prefixlessResolver struct{}

func (prefixlessResolver) FindMessageByName(n protoreflect.FullName) (protoreflect.MessageType, error) {
	return protoregistry.GlobalTypes.FindMessageByName(n)
}

func (prefixlessResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		url = url[i+1:]
	}
	return protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(url))
}

func (prefixlessResolver) FindExtensionByName(n protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(n)
}

func (prefixlessResolver) FindExtensionByNumber(m protoreflect.FullName, f protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(m, f)
}
