package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/policy"
	"github.com/isoguard/isoguard/shim"
)

// Runtime options types explain understands in JSON form (registered by these imports).
var (
	_ = runhcsopts.Options{}
	_ = runcopts.Options{}
)

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns the exit code to use when parsing ends the command.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

func runPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		w := stderr
		if len(args) > 0 {
			w = stdout
		}
		fmt.Fprintln(w, "Usage: isoguard policy validate [--platform windows|linux] FILE\n\nChecks a node policy file strictly (unknown keys, wrong types, duplicate tenants,\nmalformed paths, unknown rule IDs) and prints a summary. Exit 0 valid, 1 invalid, 2 usage.")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] != "validate" {
		fmt.Fprintf(stderr, "isoguard policy: unknown subcommand %q (validate)\n", args[0])
		return exitUsage
	}
	fs := newFlagSet("isoguard policy validate", "isoguard policy validate [--platform windows|linux] FILE", stderr)
	platform := fs.String("platform", runtime.GOOS, "the node's OS, used when the file names no platform")
	if code, ok := parseFlags(fs, args[1:], stdout); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "isoguard policy validate: exactly one FILE expected")
		return exitUsage
	}
	path := fs.Arg(0)
	f, pol, err := loadPolicy(path, policy.Platform(*platform))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	trusted := 0
	for _, t := range f.Tenants {
		if t.IsTrusted() {
			trusted++
		}
	}
	fmt.Fprintf(stdout, "%s: valid (platform %s, mode %s, %d tenants named, %d trusted; every other tenant is untrusted)\n",
		path, pol.Platform(), pol.Mode(), len(f.Tenants), trusted)
	return exitOK
}

// loadPolicy reads the policy file the way the wrapper does (shim.LoadConfig: size bound,
// errors naming the file) and compiles it.
func loadPolicy(path string, nodeOS policy.Platform) (*policy.File, *policy.Policy, error) {
	f, err := shim.LoadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	pol, err := policy.Compile(f, nodeOS)
	if err != nil {
		return nil, nil, fmt.Errorf("node policy file %s: %w", path, err)
	}
	return f, pol, nil
}

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

func runExplain(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("isoguard explain", "isoguard explain --policy FILE --bundle DIR [--options FILE] [--sandbox-bundle DIR] [--namespace NS] [--id ID] [--json]\n\n"+
		"Prints what the wrapper would decide for the container in DIR (its config.json) and the exact\n"+
		"changes, running nothing and changing no file. A sandbox or standalone container is explained\n"+
		"as its start then its Create; a pod's workload container needs --sandbox-bundle (its pod's\n"+
		"sandbox bundle) for the pod's pins. --options: the runtime options, as protobuf Any (binary)\n"+
		"or JSON ({\"@type\": \"containerd.runhcs.v1.Options\", \"sandboxIsolation\": \"PROCESS\", ...}).\n"+
		"Exit 0 allowed, 3 denied, 1 error, 2 usage.", stderr)
	policyPath := fs.String("policy", shim.ConfigPath(), "node policy file")
	bundle := fs.String("bundle", "", "bundle directory holding config.json (required)")
	sandboxBundle := fs.String("sandbox-bundle", "", "for a pod's workload container: the pod sandbox's bundle")
	optionsPath := fs.String("options", "", "runtime options file (protobuf Any or JSON)")
	namespace := fs.String("namespace", "k8s.io", "containerd namespace")
	id := fs.String("id", "", "container id (default: the bundle directory's name)")
	platform := fs.String("platform", runtime.GOOS, "the node's OS, used when the policy names no platform")
	asJSON := fs.Bool("json", false, "print the decisions as JSON")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if *bundle == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "isoguard explain: --bundle DIR is required and no positional arguments are taken")
		fs.Usage()
		return exitUsage
	}
	if *id == "" {
		*id = filepath.Base(filepath.Clean(*bundle))
	}
	_, pol, err := loadPolicy(*policyPath, policy.Platform(*platform))
	if err != nil {
		fmt.Fprintf(stderr, "isoguard explain: %v\n", err)
		return exitFail
	}
	spec, err := shim.ReadSpec(*bundle)
	if err != nil {
		fmt.Fprintf(stderr, "isoguard explain: %v\n", err)
		return exitFail
	}
	var opts *anypb.Any
	if *optionsPath != "" {
		if opts, err = readOptions(*optionsPath); err != nil {
			fmt.Fprintf(stderr, "isoguard explain: options %s: %v\n", *optionsPath, err)
			return exitFail
		}
	}
	nodeOS := pol.Platform()
	out := explanation{Bundle: *bundle}
	var calls []policy.Input
	start := shim.NewInput(policy.CallStart, nodeOS, *namespace, *id, spec, nil)
	start.Options = opts
	switch start.Role {
	case policy.RoleContainer:
		if *sandboxBundle == "" {
			fmt.Fprintln(stderr, "isoguard explain: this is a workload container of pod "+start.SandboxID+": pass --sandbox-bundle with the pod sandbox's bundle")
			return exitUsage
		}
		sbSpec, err := shim.ReadSpec(*sandboxBundle)
		if err != nil {
			fmt.Fprintf(stderr, "isoguard explain: sandbox: %v\n", err)
			return exitFail
		}
		sbStart := shim.NewInput(policy.CallStart, nodeOS, *namespace, filepath.Base(filepath.Clean(*sandboxBundle)), sbSpec, nil)
		sbStart.Options = opts
		d := pol.Evaluate(sbStart)
		if d.Pins == nil {
			fmt.Fprintf(stderr, "isoguard explain: the pod's sandbox would not start: %v\n", d.Error())
			return exitDenied
		}
		out.Pins = d.Pins
		join := shim.NewInput(policy.CallJoin, nodeOS, *namespace, *id, spec, d.Pins)
		create := shim.NewInput(policy.CallCreate, nodeOS, *namespace, *id, spec, d.Pins)
		create.Options = opts
		calls = []policy.Input{join, create}
	default:
		calls = []policy.Input{start}
	}
	allowed := true
	for i := 0; i < len(calls); i++ {
		in := calls[i]
		d := pol.Evaluate(in)
		out.Decisions = append(out.Decisions, explainedCall{Call: d.Call, Tenant: d.Tenant, Trusted: d.Trusted, Mode: d.Mode, Allowed: d.Allowed, Denials: d.Denials, Mutations: d.Mutations})
		if !d.Allowed {
			allowed = false
			break
		}
		if in.Call == policy.CallStart {
			// The Create that follows a start sees what start wrote and pinned.
			out.Pins = d.Pins
			next := shim.NewInput(policy.CallCreate, nodeOS, *namespace, *id, spec, d.Pins)
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
	if *asJSON {
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
			note := ""
			if f.Audit {
				note = " [audit only]"
			}
			fmt.Fprintf(w, "  deny   %s: %s%s\n", f.Rule, f.Reason, note)
		}
		for _, m := range d.Mutations {
			note := ""
			if m.Audit {
				note = " [audit only]"
			}
			fmt.Fprintf(w, "  change %s: %s: %q -> %q%s\n", m.Rule, m.Field, m.Old, m.New, note)
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
