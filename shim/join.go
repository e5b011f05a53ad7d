package shim

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/shim/hooks"
	"github.com/isoguard/isoguard/shim/internal/bootstrap"
	"github.com/isoguard/isoguard/shim/internal/relay"
	"github.com/isoguard/isoguard/shim/internal/transport"
)

// A workload container joins its pod's wrapper in one of two ways, with the same checks,
// the same join hook and the same audit record:
//   - containerd runs `start` for it (1.x; 2.x when the pod's wrapper answered version 2,
//     or the sandbox is not in its store): joinPod answers the pod's wrapper address;
//   - containerd >= 2.0 reuses the pod's wrapper without a `start`, because its `start`
//     answered version 3 (core/runtime/v2/shim_manager.go Start): the container's first
//     call is its Create on the pod's wrapper, where joiner runs the checks.
// The marker file (bundle.JoinedFile) keeps a container from being joined twice.

// joinPod answers the pod's wrapper address for a workload container, and only for a pod
// this wrapper started and recorded (threats T4). It never answers the delegate's address:
// containerd would then talk to the delegate directly for this container. A refusal before
// the join hook decides is told to the hooks (audited).
func joinPod(ctx context.Context, f Flags, sc startContext, h hooks.Hooks) (bootstrap.Answer, error) {
	rec, sb, err := podRecord(f, sc)
	if err != nil {
		h.Refused(ctx, hooks.Refusal{Call: "join", Namespace: f.Namespace, ID: f.ID, SandboxID: sc.sandboxID, Cause: err})
		return bootstrap.Answer{}, err
	}
	if err := relay.RunHook(ctx, "join", func() error { return h.Join(ctx, rec.Instance(sb), sc.bundle) }); err != nil {
		return bootstrap.Answer{}, err
	}
	answer := bootstrap.Answer{Address: rec.Address, Version: bootstrap.AnswerVersion(sc.in)}
	// containerd 1.x restores this container's connection from its own bundle's address;
	// the marker tells the pod's wrapper that this container's join is decided.
	if err := bundle.WriteRestoreFiles(sc.bundle, answer.Address, rec.Pid, answer.Version); err != nil {
		return bootstrap.Answer{}, err
	}
	if err := bundle.WriteJoined(sc.bundle, rec.ID); err != nil {
		return bootstrap.Answer{}, err
	}
	return answer, nil
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

// joiner runs a workload container's join at its Create when containerd reached the pod's
// wrapper without running `start` for it.
type joiner struct {
	hooks.Hooks
}

func (j joiner) Create(ctx context.Context, inst *hooks.Instance, req *hooks.CreateRequest) error {
	if req.ID != inst.ID && !bundle.Joined(req.Bundle, inst.ID) {
		if err := j.join(ctx, inst, req); err != nil {
			return err
		}
	}
	return j.Hooks.Create(ctx, inst, req)
}

func (j joiner) join(ctx context.Context, inst *hooks.Instance, req *hooks.CreateRequest) error {
	if err := checkJoin(ctx, inst, req); err != nil {
		j.Refused(ctx, hooks.Refusal{Call: "join", Namespace: inst.Namespace, ID: req.ID, SandboxID: inst.ID, Cause: err})
		return err
	}
	if err := relay.RunHook(ctx, "join", func() error { return j.Hooks.Join(ctx, inst, req.Bundle) }); err != nil {
		return err
	}
	return bundle.WriteJoined(req.Bundle, inst.ID)
}

// checkJoin is podRecord's check for a container that reached the wrapper directly: the
// wrapper is a pod sandbox's, the container is a workload container of this pod (its
// config.json's CRI annotations), of the wrapper's namespace (the call's and the bundle's
// directory).
func checkJoin(ctx context.Context, inst *hooks.Instance, req *hooks.CreateRequest) error {
	if !inst.Sandbox {
		return fmt.Errorf("container %s reached the wrapper of standalone container %s: %w", req.ID, inst.ID, errdefs.ErrPermissionDenied)
	}
	if ns, ok := ttrpc.GetMetadataValue(ctx, namespaces.TTRPCHeader); ok && ns != inst.Namespace {
		return fmt.Errorf("container %s of namespace %s reached the wrapper of pod %s in namespace %s: %w", req.ID, ns, inst.ID, inst.Namespace, errdefs.ErrPermissionDenied)
	}
	want, err := bundle.Sibling(inst.Bundle, req.ID)
	if err != nil {
		return err
	}
	if filepath.Clean(req.Bundle) != want {
		return fmt.Errorf("container %s's bundle %s is not in the pod's namespace directory %s: %w", req.ID, req.Bundle, filepath.Dir(want), errdefs.ErrPermissionDenied)
	}
	spec, err := bundle.ReadSpecFile(req.Bundle)
	if err != nil {
		return err
	}
	role, sandboxID, err := bundle.Role(spec)
	if err != nil {
		return err
	}
	if role != cri.RoleContainer || sandboxID != inst.ID {
		return fmt.Errorf("container %s (a %s naming pod %q) reached the wrapper of pod %s: %w", req.ID, role, sandboxID, inst.ID, errdefs.ErrPermissionDenied)
	}
	return nil
}
