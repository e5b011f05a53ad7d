package shim

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/Microsoft/go-winio/pkg/etw"
	"github.com/Microsoft/go-winio/pkg/etwlogrus"
	"github.com/Microsoft/go-winio/pkg/guid"
	"github.com/containerd/log"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/version"
)

// ETW: like runhcs (cmd/containerd-shim-runhcs-v1/main.go registers
// "Microsoft.Virtualization.RunHCS"), the wrapper daemon registers an ETW provider and
// sends every log entry to it through a logrus hook, so the shim's logs can be traced with
// the node's usual tools next to runhcs's and HCS's (docs/install-windows.md,
// "Troubleshooting"):
//
//	wpr -start isoguard.wprp    or    logman start isoguard -p {7bf65130-6003-5da8-5391-104e197729be} -ets
//
// Log entries carry ids, addresses, rule IDs and reasons, never env values or other
// secrets of a spec (threats T15), so an ETW session sees nothing the audit trail would not.
const (
	// ETWProviderName is the provider's name.
	ETWProviderName = "isoguard"
	// ETWProviderID is the provider's GUID: the one go-winio's etw.NewProvider derives
	// from ETWProviderName (the EventSource name hash, the same scheme that gives runhcs
	// 0b52781f-b24d-5685-ddf6-69830ed40ec3), pinned so the documented GUID cannot drift.
	ETWProviderID = "7bf65130-6003-5da8-5391-104e197729be"
)

var etwOnce sync.Once

// openLogOutput: on Windows the daemon logs to its stderr, the bundle's isoguard-shim.log.
// The log pipe \\.\pipe\containerd-shim-<ns>-<id>-log belongs to runhcs, which creates it
// (go-winio refuses an existing pipe): the wrapper must not take it. It also registers the
// ETW provider and its logrus hook, once per process; when that fails the daemon logs the
// reason to its stderr and goes on.
func openLogOutput(ctx context.Context, f Flags) io.Writer {
	etwOnce.Do(func() { registerETW(ctx, f) })
	return nil
}

func registerETW(ctx context.Context, f Flags) {
	id, err := guid.FromString(ETWProviderID)
	if err != nil {
		log.G(ctx).WithError(err).Warn("ETW provider id")
		return
	}
	// The provider is never closed: it lives until the process exits (as runhcs's).
	provider, err := etw.NewProviderWithOptions(ETWProviderName, etw.WithID(id))
	if err != nil || provider == nil { // nil: a platform without ETW support (windows/arm)
		log.G(ctx).WithError(err).Warn("ETW provider not registered; logging to " + bundle.DaemonLog + " only")
		return
	}
	hook, err := etwlogrus.NewHookFromProvider(provider)
	if err != nil {
		log.G(ctx).WithError(err).Warn("ETW logrus hook")
		return
	}
	log.L.Logger.AddHook(hook)
	_ = provider.WriteEvent("ShimLaunched", nil, etw.WithFields(
		etw.StringArray("Args", os.Args),
		etw.StringField("version", version.Version),
		etw.StringField("revision", version.Revision),
		etw.StringField("namespace", f.Namespace),
		etw.StringField("id", f.ID),
	))
}
