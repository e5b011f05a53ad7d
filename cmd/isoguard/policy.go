package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/isoguard/isoguard/internal/enforce"
	"github.com/isoguard/isoguard/policy"
)

const policyUsage = `Usage:
  isoguard policy validate [--platform windows|linux] FILE
  isoguard policy fields [--platform windows|linux] [--class inspected|safe|denied] [--markdown]

validate checks a node policy file strictly (unknown keys, wrong types, duplicate tenants,
malformed paths, unknown rule IDs) for the platform it names, on any machine, and prints
a summary. Exit 0 valid, 1 invalid, 2 usage.

fields lists how every field of what a workload's calls carry (the task API requests,
config.json, the runtime options, an Exec's process, an Update's resources) is treated for
untrusted tenants: inspected by a rule, safe, or denied unless untrusted.allowedFields
names it.
`

func runPolicy(args []string, stdout, stderr io.Writer) int {
	return group("isoguard policy", policyUsage, map[string]func([]string, io.Writer, io.Writer) int{
		"validate": runValidate,
		"fields":   runFields,
	}, args, stdout, stderr)
}

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newCommand("isoguard policy validate", "[--platform windows|linux] FILE\n\nChecks a node policy file strictly for the platform it names (or --platform when it names none).", stderr, "FILE")
	platform := fs.String("platform", "", "the node's OS for a file that names no platform (default: this machine's)")
	if code, done := fs.parse(args, stdout); done {
		return code
	}
	path := fs.Arg(0)
	f, pol, err := loadPolicy(path, policy.Platform(*platform), flagSet(fs.FlagSet, "platform"))
	if err != nil {
		fmt.Fprintf(stderr, "isoguard policy validate: %v\n", err)
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

// loadPolicy reads a policy file the way the wrapper does (enforce.LoadConfig: size bound,
// errors naming the file, line and field) and compiles it for the platform it names; a
// file that names none is compiled for platform (when set) or the wrapper's default. An
// explicit platform that contradicts the file's is an error.
func loadPolicy(path string, platform policy.Platform, explicit bool) (*policy.File, *policy.Policy, error) {
	f, err := enforce.LoadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	target := enforce.Platform(f)
	switch {
	case f.Platform != "" && explicit && platform != f.Platform:
		return nil, nil, fmt.Errorf("node policy file %s is for platform %s, not %s", path, f.Platform, platform)
	case f.Platform == "" && platform != "":
		target = platform
	}
	pol, err := policy.Compile(f, target)
	if err != nil {
		return nil, nil, fmt.Errorf("node policy file %s: %w", path, err)
	}
	return f, pol, nil
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func runFields(args []string, stdout, stderr io.Writer) int {
	fs := newCommand("isoguard policy fields", "[--platform windows|linux] [--class inspected|safe|denied] [--markdown]\n\nLists how each field is treated for untrusted tenants (docs/policy.md#fields).", stderr)
	platform := fs.String("platform", "", "only the fields of this platform's profile (default: both)")
	class := fs.String("class", "", "only fields of this class: inspected, safe or denied")
	markdown := fs.Bool("markdown", false, "print the tables of docs/policy.md")
	if code, done := fs.parse(args, stdout); done {
		return code
	}
	switch policy.Platform(*platform) {
	case "", policy.Windows, policy.Linux:
	default:
		fmt.Fprintf(stderr, "isoguard policy fields: --platform %q: expected windows or linux\n", *platform)
		return exitUsage
	}
	switch policy.FieldClass(*class) {
	case "", policy.FieldInspected, policy.FieldSafe, policy.FieldDenied:
	default:
		fmt.Fprintf(stderr, "isoguard policy fields: --class %q: expected inspected, safe or denied\n", *class)
		return exitUsage
	}
	var rows []policy.FieldInfo
	for _, f := range policy.Fields() {
		if (*class == "" || f.Class == policy.FieldClass(*class)) && (*platform == "" || f.Platforms == nil || slices.Contains(f.Platforms, policy.Platform(*platform))) {
			rows = append(rows, f)
		}
	}
	if *markdown {
		writeFieldsMarkdown(stdout, rows)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tFIELD\tPLATFORM\tCLASS\tRULE\tWHY")
	for _, f := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Scope, f.Path, fieldPlatforms(f), f.Class, orDash(f.Rule), f.Why)
	}
	tw.Flush()
	return exitOK
}

// writeFieldsMarkdown prints one table per scope, in the order of policy.FieldScopes.
func writeFieldsMarkdown(w io.Writer, rows []policy.FieldInfo) {
	first := true
	for _, scope := range policy.FieldScopes() {
		var in []policy.FieldInfo
		for _, f := range rows {
			if f.Scope == scope {
				in = append(in, f)
			}
		}
		if len(in) == 0 {
			continue
		}
		if !first {
			fmt.Fprintln(w)
		}
		first = false
		fmt.Fprintf(w, "**%s**\n\n| field | platform | class | rule | why |\n|---|---|---|---|---|\n", scope)
		for _, f := range in {
			path := "`" + f.Path + "`"
			if f.Path == "*" {
				path = "every field"
			}
			rule := orDash(f.Rule)
			if f.Rule != "" {
				rule = "`" + f.Rule + "`"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", path, fieldPlatforms(f), f.Class, rule, strings.ReplaceAll(f.Why, "|", "\\|"))
		}
	}
}

func fieldPlatforms(f policy.FieldInfo) string {
	if f.Platforms == nil {
		return "both"
	}
	ps := make([]string, len(f.Platforms))
	for i, p := range f.Platforms {
		ps[i] = string(p)
	}
	return strings.Join(ps, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
