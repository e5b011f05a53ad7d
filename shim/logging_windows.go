package shim

import (
	"context"
	"io"
)

// openLogOutput: on Windows the daemon logs to its stderr, the bundle's isoguard-shim.log.
// The log pipe \\.\pipe\containerd-shim-<ns>-<id>-log belongs to runhcs, which creates it
// (go-winio refuses an existing pipe): the wrapper must not take it.
func openLogOutput(context.Context, Flags) io.Writer { return nil }
