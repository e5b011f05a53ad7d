// Command isoguard is the operator's tool: validate and explain node policies, and generate
// containerd and Kubernetes configuration for the isoguard runtime handler.
//
// Exit codes: 0 success (explain: the call would be allowed), 1 failure or an invalid
// policy, 2 usage error, 3 explain: the call would be denied.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1
	exitUsage  = 2
	exitDenied = 3
)

// topCommand is one of the tool's commands.
type topCommand struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []topCommand {
	return []topCommand{
		{"policy", "validate a node policy file (isoguard policy validate FILE)", runPolicy},
		{"explain", "show the decision and exact changes for a bundle, running nothing", runExplain},
		{"config", "print containerd or Kubernetes configuration for isoguard", runConfig},
		{"ps", "list the node's isoguard wrappers: pod, tenant, isolation, delegate, forced user", runPs},
		{"version", "print the version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "isoguard: the operator's tool for the isoguard runtime-level isolation enforcer\n\nUsage:\n  isoguard COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `isoguard COMMAND --help` for a command's flags.\nExit codes: 0 ok, 1 failure or invalid policy, 2 usage error, 3 explain: denied.\n")
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "isoguard: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func sortStrings(s []string) { sort.Strings(s) }
