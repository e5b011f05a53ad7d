package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containerd/errdefs"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/shim/hooks"
	"github.com/isoguard/isoguard/shim/internal/bootstrap"
	"github.com/isoguard/isoguard/shim/internal/relay"
	"github.com/isoguard/isoguard/shim/internal/transport"
)

// start is `start`. It prints nothing but the answer (containerd reads stdout and stderr
// combined) and answers a plain address: task API version 2 over ttrpc. A workload
// container joins its pod's wrapper; anything else gets a wrapper daemon of its own.
func start(ctx context.Context, f Flags, stdin io.Reader, stdout io.Writer, h hooks.Hooks) error {
	if err := f.validate(); err != nil {
		return err
	}
	sc, err := readStartContext(f, stdin)
	if err != nil {
		h.Refused(ctx, hooks.Refusal{Call: "start", Namespace: f.Namespace, ID: f.ID, Cause: err})
		return err
	}
	var address string
	if sc.role.IsWorkload() {
		address, err = joinPod(ctx, f, sc, h)
	} else {
		socket := transport.WrapperAddress(f.Address, f.Namespace, f.ID, sc.in.SocketDir())
		address, err = spawnDaemon(f, sc.bundle, sc.data, socket)
	}
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, address)
	return err
}

// startContext is what both `start` and `serve` read first: stdin (raw and decoded), the
// bundle (the working directory containerd chose) and the container's role in a pod.
type startContext struct {
	data      []byte
	in        bootstrap.StartInput
	bundle    string
	role      cri.Role
	sandboxID string
}

func readStartContext(f Flags, stdin io.Reader) (startContext, error) {
	var sc startContext
	var err error
	if sc.data, err = io.ReadAll(io.LimitReader(stdin, bootstrap.MaxStdin+1)); err != nil {
		return sc, fmt.Errorf("read options from stdin: %w", err)
	}
	if sc.in, err = bootstrap.ParseStartInput(sc.data, f.ID, f.Namespace); err != nil {
		return sc, err
	}
	if sc.bundle, err = os.Getwd(); err != nil {
		return sc, err
	}
	spec, err := bundle.ReadSpecFile(sc.bundle)
	if err != nil {
		return sc, err
	}
	sc.role, sc.sandboxID, err = bundle.Role(spec)
	return sc, err
}

// joinPod answers the pod's wrapper address for a workload container, and only for a pod
// this wrapper started and recorded (threats T4). It never answers the delegate's address:
// containerd would then talk to the delegate directly for this container. A refusal before
// the join hook decides is told to the hooks (audited).
func joinPod(ctx context.Context, f Flags, sc startContext, h hooks.Hooks) (string, error) {
	rec, sb, err := podRecord(f, sc)
	if err != nil {
		h.Refused(ctx, hooks.Refusal{Call: "join", Namespace: f.Namespace, ID: f.ID, SandboxID: sc.sandboxID, Cause: err})
		return "", err
	}
	if err := relay.RunHook(ctx, "join", func() error { return h.Join(ctx, rec.Instance(sb), sc.bundle) }); err != nil {
		return "", err
	}
	// containerd 1.x restores this container's connection from its own bundle's address.
	if err := bundle.WriteRestoreFiles(sc.bundle, rec.Address, rec.Pid); err != nil {
		return "", err
	}
	return rec.Address, nil
}

// podRecord is the record of the pod a workload container names, if this wrapper started
// that pod as a sandbox of the container's namespace and its wrapper runs; sb is the
// sandbox's bundle.
func podRecord(f Flags, sc startContext) (rec *bundle.Record, sb string, err error) {
	if sb, err = bundle.Sibling(sc.bundle, sc.sandboxID); err != nil {
		return nil, "", err
	}
	rec, err = bundle.ReadRecord(sb)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, "", fmt.Errorf("container %s names pod sandbox %s, which isoguard did not start in namespace %s: %w",
				f.ID, sc.sandboxID, f.Namespace, errdefs.ErrPermissionDenied)
		}
		return nil, "", fmt.Errorf("container %s: pod sandbox %s: %w", f.ID, sc.sandboxID, err)
	}
	if !rec.Sandbox || rec.ID != sc.sandboxID || rec.Namespace != f.Namespace {
		return nil, "", fmt.Errorf("container %s names %s, which isoguard started as a %s in namespace %s, not as a pod sandbox in namespace %s: %w",
			f.ID, sc.sandboxID, rec.Kind(), rec.Namespace, f.Namespace, errdefs.ErrPermissionDenied)
	}
	conn, err := transport.Dial(rec.Address, 2*time.Second)
	if err != nil {
		return nil, "", fmt.Errorf("pod sandbox %s's wrapper at %s is not running: %w: %w", sc.sandboxID, rec.Address, err, errdefs.ErrUnavailable)
	}
	conn.Close()
	return rec, sb, nil
}
