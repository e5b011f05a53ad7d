package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is the flag set of one command: the one flag-handling path of the tool. --help
// prints the usage once, on stdout, and ends the command with exit 0; a parse error is
// printed once, on stderr, with a hint, and ends it with exit 2.
type command struct {
	*flag.FlagSet
	synopsis string // after the command's name: flags and arguments, then a description
	// args is how many positional arguments the command takes (names for messages).
	args []string
}

func newCommand(name, synopsis string, stderr io.Writer, args ...string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // parse prints the usage where it belongs
	return &command{FlagSet: fs, synopsis: synopsis, args: args}
}

// parse parses args. done is true when the command ends here, with code.
func (c *command) parse(args []string, stdout io.Writer) (code int, done bool) {
	stderr := c.Output()
	if err := c.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printUsage(stdout)
			return exitOK, true
		}
		// The flag package printed the error.
		fmt.Fprintf(stderr, "Run '%s --help' for the flags.\n", c.Name())
		return exitUsage, true
	}
	switch {
	case c.NArg() > len(c.args):
		fmt.Fprintf(stderr, "%s: unexpected argument %q\nRun '%s --help' for the flags.\n", c.Name(), c.Arg(len(c.args)), c.Name())
		return exitUsage, true
	case c.NArg() < len(c.args):
		fmt.Fprintf(stderr, "%s: %s expected\nRun '%s --help' for the flags.\n", c.Name(), strings.Join(c.args[c.NArg():], " "), c.Name())
		return exitUsage, true
	}
	return exitOK, false
}

func (c *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s %s\n\nFlags:\n", c.Name(), c.synopsis)
	out := c.Output()
	c.SetOutput(w)
	c.PrintDefaults()
	c.SetOutput(out)
}

// group runs a command with subcommands (`isoguard policy`, `isoguard config`): without
// one it prints the group's usage on stderr (exit 2), with -h/--help/help on stdout
// (exit 0), and names an unknown one.
func group(name, usage string, subs map[string]func(args []string, stdout, stderr io.Writer) int, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if run, ok := subs[args[0]]; ok {
		return run(args[1:], stdout, stderr)
	}
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	sortStrings(names)
	fmt.Fprintf(stderr, "%s: unknown subcommand %q (%s)\n\n%s", name, args[0], strings.Join(names, ", "), usage)
	return exitUsage
}

// usageError reports a bad flag value, "isoguard config containerd: --version: ...", exit 2.
func usageError(stderr io.Writer, cmd, flagName string, err error) int {
	fmt.Fprintf(stderr, "%s: --%s: %v\n", cmd, flagName, err)
	return exitUsage
}
