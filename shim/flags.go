package shim

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/shim/internal/bootstrap"
)

// Action is the first positional argument containerd passes after the global flags.
type Action string

const (
	ActionStart  Action = "start"
	ActionDelete Action = "delete"
	// ActionServe is isoguard's own hidden subcommand: the long-running wrapper daemon that
	// `start` spawns. containerd never calls it.
	ActionServe Action = "serve"
)

// Flags are the command-line flags containerd passes to every shim binary
// (core/runtime/v2/command.go in containerd 2.x; pkg/shim/util.go Command in 1.x), plus
// isoguard's own -socket for the serve subcommand. runhcs accepts the same set
// (cmd/containerd-shim-runhcs-v1/main.go), so the wrapper can hand them to its delegate
// unchanged.
type Flags struct {
	Namespace     string
	Address       string // containerd's gRPC address
	PublishBinary string
	ID            string
	Bundle        string // only with delete
	Debug         bool
	Socket        string // serve only: the wrapper address to listen on
	Version       bool
	Info          bool
	Action        Action
}

// ParseFlags parses a shim command line (without argv[0]). It accepts both "-flag" and
// "--flag" spellings like the flag package does. Errors name the offending argument.
func ParseFlags(args []string, stderr io.Writer) (Flags, error) {
	var f Flags
	fs := flag.NewFlagSet("containerd-shim-isoguard-v1", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.Namespace, "namespace", "", "namespace that owns the shim")
	fs.StringVar(&f.Address, "address", "", "grpc address back to main containerd")
	fs.StringVar(&f.PublishBinary, "publish-binary", "", "path to the containerd binary (used to find the delegate on Windows)")
	fs.StringVar(&f.ID, "id", "", "id of the task")
	fs.StringVar(&f.Bundle, "bundle", "", "path to the bundle if not workdir (delete)")
	fs.BoolVar(&f.Debug, "debug", false, "enable debug output in logs")
	fs.StringVar(&f.Socket, "socket", "", "address to serve on (serve only; set by start)")
	fs.BoolVar(&f.Version, "v", false, "")
	fs.BoolVar(&f.Version, "version", false, "show the shim version and exit")
	fs.BoolVar(&f.Info, "info", false, "print the runtime info protobuf to stdout and exit")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		f.Action = Action(fs.Arg(0))
	}
	return f, nil
}

// validate checks what every action needs. The same four flags are required by runhcs's
// pre-run check (cmd/containerd-shim-runhcs-v1/main.go), so a command line that passes
// here also passes the delegate's own check.
func (f Flags) validate() error {
	var missing []string
	if f.Namespace == "" {
		missing = append(missing, "-namespace")
	}
	if f.Address == "" {
		missing = append(missing, "-address")
	}
	if f.PublishBinary == "" {
		missing = append(missing, "-publish-binary")
	}
	if f.ID == "" {
		missing = append(missing, "-id")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing required flags %v: %w", missing, errdefs.ErrInvalidArgument)
	}
	if err := bundle.CheckPathElement("-id", f.ID); err != nil {
		return err
	}
	if err := bundle.CheckPathElement("-namespace", f.Namespace); err != nil {
		return err
	}
	if f.Action == ActionDelete && f.Bundle == "" {
		return fmt.Errorf("delete needs -bundle: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// delegateArgs is the argument list for the delegate: the same global flags containerd gave
// the wrapper, in containerd's order, followed by the action.
func (f Flags) delegateArgs(action Action) []string {
	args := []string{
		"-namespace", f.Namespace,
		"-address", f.Address,
		"-publish-binary", f.PublishBinary,
		"-id", f.ID,
	}
	if f.Bundle != "" {
		args = append(args, "-bundle", f.Bundle)
	}
	if f.Debug {
		args = append(args, "-debug")
	}
	return append(args, string(action))
}

// launch is what containerd told this shim on its command line and in its environment.
func (f Flags) launch() bootstrap.Launch {
	return bootstrap.Launch{
		ID: f.ID, Namespace: f.Namespace, GRPCAddress: f.Address,
		TTRPCAddress: os.Getenv("TTRPC_ADDRESS"), ContainerdBinary: f.PublishBinary, Debug: f.Debug,
	}
}

// serveArgs is the argument list of the wrapper's own daemon.
func (f Flags) serveArgs(socket string) []string {
	args := f.delegateArgs(ActionServe)
	// -socket must precede the action.
	return append(append(args[:len(args)-1:len(args)-1], "-socket", socket), string(ActionServe))
}
