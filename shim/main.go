// Package shim is containerd-shim-isoguard-v1, the process containerd runs as a runtime v2
// shim: its command line (start, delete, -info, -v), and the wrapper daemon that `start`
// spawns. The daemon starts a delegate shim (hcsshim's containerd-shim-runhcs-v1 on
// Windows, containerd-shim-runc-v2 or a sandbox runtime's shim on Linux), serves
// containerd's task API on an address of its own and relays it to the delegate (package
// relay), with a pod's start, a container's join and the task calls Create, Exec and
// Update passing through the hooks (package hooks) first. The wrapper decides nothing:
// the hooks do.
//
// Processes, in containerd's terms:
//
//	containerd ── start ──▶ wrapper `start` ── spawns ──▶ wrapper daemon (`serve`)
//	                                                        │ runs delegate `start`, connects
//	containerd ◀══ ttrpc task v2 (wrapper address) ═══▶ wrapper daemon ══ ttrpc ══▶ delegate
//	containerd ── delete ─▶ wrapper `delete` ── runs ──▶ delegate `delete`, relays its answer
//
// docs/architecture.md follows one Create through these packages.
package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/containerd/log"

	"github.com/isoguard/isoguard/shim/hooks"
	"github.com/isoguard/isoguard/version"
)

// RuntimeName is the runtime type containerd knows the wrapper by.
const RuntimeName = "io.containerd.isoguard.v1"

// programName prefixes the wrapper's own errors, once, where they leave the process.
const programName = "containerd-shim-isoguard-v1"

// Main runs the shim binary and exits. h decides start, join, Create, Exec and Update.
func Main(h hooks.Hooks) {
	os.Exit(Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, h))
}

// Run executes one shim invocation and returns the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, h hooks.Hooks) int {
	f, err := ParseFlags(args, stderr)
	if err != nil {
		return 2
	}
	if h == nil {
		h = hooks.PassThrough{}
	}
	switch {
	case f.Version:
		fmt.Fprintf(stdout, "%s:\n  Version:  %s\n  Revision: %s\n  Go version: %s\n", filepath.Base(os.Args[0]), version.Version, version.Revision, runtime.Version())
		return 0
	case f.Info:
		return exitCode(stderr, info(ctx, stdin, stdout, h, f))
	}
	// start and delete write their answer to stdout; logs never go there.
	log.L.Logger.SetOutput(stderr)
	_ = log.SetFormat(log.TextFormat)
	if f.Debug {
		_ = log.SetLevel("debug")
	}
	switch f.Action {
	case ActionStart:
		// Nothing but the answer may be printed on success: containerd reads stdout and
		// stderr combined. Logs are discarded; errors are the message.
		log.L.Logger.SetOutput(io.Discard)
		return exitCode(stderr, start(ctx, f, stdin, stdout, h))
	case ActionDelete:
		return exitCode(stderr, deleteAction(ctx, f, stdout, stderr, h))
	case ActionServe:
		if err := f.validate(); err != nil {
			return exitCode(stderr, err)
		}
		setupDaemon(ctx, f)
		return exitCode(stderr, serve(ctx, f, stdin, os.Stdout, h))
	case "":
		fmt.Fprintf(stderr, "%s: missing action (start, delete); containerd runs this binary as a runtime v2 shim\n", programName)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: unknown action %q (start, delete)\n", programName, f.Action)
		return 2
	}
}

// exitCode is the process's edge: an error is printed once, with the program's name.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", programName, err)
	return 1
}
