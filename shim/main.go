// Package shim is containerd-shim-isoguard-v1: a containerd runtime v2 shim that starts a
// delegate shim (hcsshim's containerd-shim-runhcs-v1 on Windows, containerd-shim-runc-v2 on
// Linux), serves containerd's task API on an address of its own and relays it to the
// delegate, with Create, Exec and Update passing through Hooks first.
//
// Processes, in containerd's terms:
//
//	containerd ── start ──▶ wrapper `start` ── spawns ──▶ wrapper daemon (`serve`)
//	                                                        │ runs delegate `start`, connects
//	containerd ◀══ ttrpc task v2 (wrapper address) ═══▶ wrapper daemon ══ ttrpc ══▶ delegate
//	containerd ── delete ─▶ wrapper `delete` ── runs ──▶ delegate `delete`, relays its answer
package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"

	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/log"
	"google.golang.org/protobuf/proto"

	"github.com/isoguard/isoguard/version"
)

// RuntimeName is the runtime type containerd knows the wrapper by.
const RuntimeName = "io.containerd.isoguard.v1"

// Main runs the shim binary and exits. hooks decide Create/Exec/Update and start.
func Main(hooks Hooks) {
	os.Exit(Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, hooks))
}

// Run executes one shim invocation and returns the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, hooks Hooks) int {
	f, err := ParseFlags(args, stderr)
	if err != nil {
		return 2
	}
	if hooks == nil {
		hooks = PassThrough{}
	}
	switch {
	case f.Version:
		fmt.Fprintf(stdout, "%s:\n  Version:  %s\n  Revision: %s\n  Go version: %s\n", filepath.Base(os.Args[0]), version.Version, version.Revision, runtime.Version())
		return 0
	case f.Info:
		return exitCode(stderr, info(ctx, f, stdin, stdout))
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
		return exitCode(stderr, start(ctx, f, stdin, stdout, hooks))
	case ActionDelete:
		return exitCode(stderr, deleteAction(ctx, f, stdout, stderr))
	case ActionServe:
		if err := f.validate(); err != nil {
			return exitCode(stderr, err)
		}
		setupDaemon(ctx, f)
		return exitCode(stderr, serve(ctx, f, stdin, os.Stdout, hooks))
	case "":
		fmt.Fprintln(stderr, "containerd-shim-isoguard-v1: missing action (start, delete); containerd runs this binary as a runtime v2 shim")
		return 2
	default:
		fmt.Fprintf(stderr, "containerd-shim-isoguard-v1: unknown action %q (start, delete)\n", f.Action)
		return 2
	}
}

func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "containerd-shim-isoguard-v1: %v\n", err)
	return 1
}

// setupDaemon tunes the long-running daemon like containerd's shims (pkg/shim/shim.go
// setRuntime) and points its logs at containerd.
func setupDaemon(ctx context.Context, f Flags) {
	debug.SetGCPercent(40)
	// A relay does little work per call but hands every call between goroutines several
	// times; on one P those hand-offs need no wake-up of another OS thread, and the daemon
	// keeps fewer threads and per-P caches (smaller RSS) than with containerd's
	// GOMAXPROCS=2 for shims.
	runtime.GOMAXPROCS(1)
	if w := openLogOutput(ctx, f); w != nil {
		log.L.Logger.SetOutput(w)
	}
}

// info answers `-info` with a protobuf RuntimeInfo. containerd 2.x calls it once per
// runtime (stdin: the runtime options); a failure is only logged by containerd.
func info(ctx context.Context, f Flags, stdin io.Reader, stdout io.Writer) error {
	ri := &apitypes.RuntimeInfo{
		Name:    RuntimeName,
		Version: &apitypes.RuntimeVersion{Version: version.Version, Revision: version.Revision},
		Annotations: map[string]string{
			"isoguard.dev/config": ConfigPath(),
		},
	}
	if settings, err := delegateSettings(); err != nil {
		ri.Annotations["isoguard.dev/config-error"] = err.Error()
	} else if p, err := findDelegate(settings.Path, f); err != nil {
		ri.Annotations["isoguard.dev/delegate-error"] = err.Error()
	} else {
		ri.Annotations["isoguard.dev/delegate"] = p
		if d, err := delegateInfo(ctx, p, stdin); err == nil {
			// The delegate's features (e.g. runc's OCI features) describe what actually runs.
			ri.Options, ri.Features = d.GetOptions(), d.GetFeatures()
			if v := d.GetVersion(); v != nil {
				ri.Annotations["isoguard.dev/delegate-version"] = v.GetVersion()
			}
		}
	}
	data, err := proto.Marshal(ri)
	if err != nil {
		return err
	}
	_, err = stdout.Write(data)
	return err
}
