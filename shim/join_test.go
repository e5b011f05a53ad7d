package shim

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/shim/hooks"
)

// joinHooks counts the join and create hook calls and records refusals.
type joinHooks struct {
	hooks.PassThrough
	joins, creates *int
	joinErr        error
	refused        *[]hooks.Refusal
}

func (h joinHooks) Join(context.Context, *hooks.Instance, string) error {
	*h.joins++
	return h.joinErr
}
func (h joinHooks) Create(context.Context, *hooks.Instance, *hooks.CreateRequest) error {
	*h.creates++
	return nil
}
func (h joinHooks) Refused(_ context.Context, r hooks.Refusal) { *h.refused = append(*h.refused, r) }

// TestJoinAtCreate: a workload container that reaches the pod's wrapper without a `start`
// (containerd >= 2.0 reusing a wrapper that answered version 3) is joined at its first
// Create, with the join hook, once; one that `start` joined is not joined again; anything
// that is not a workload container of this pod is refused and the refusal told to the hooks.
func TestJoinAtCreate(t *testing.T) {
	nsDir, rec := podFixture(t, true, true)
	inst := rec.Instance(filepath.Join(nsDir, "sb1"))
	var joins, creates int
	var refused []hooks.Refusal
	j := joiner{Hooks: joinHooks{joins: &joins, creates: &creates, refused: &refused}}
	ctx := ttrpc.WithMetadata(context.Background(), ttrpc.MD{namespaces.TTRPCHeader: []string{"k8s.io"}})
	container := func(id, sandboxID string) *hooks.CreateRequest {
		b := filepath.Join(nsDir, id)
		writeBundleSpec(t, b, map[string]string{cri.ContainerType: "container", cri.SandboxID: sandboxID})
		return &hooks.CreateRequest{ID: id, Bundle: b}
	}

	// The sandbox's own Create: no join.
	if err := j.Create(ctx, inst, &hooks.CreateRequest{ID: "sb1", Bundle: inst.Bundle}); err != nil || joins != 0 || creates != 1 {
		t.Fatalf("sandbox create: %v, joins %d creates %d", err, joins, creates)
	}
	// A workload container of the pod: joined once, at its first Create.
	c1 := container("c1", "sb1")
	for range 2 {
		if err := j.Create(ctx, inst, c1); err != nil {
			t.Fatal(err)
		}
	}
	if joins != 1 || creates != 3 || !bundle.Joined(c1.Bundle, "sb1") {
		t.Fatalf("workload container: joins %d creates %d, marker %v", joins, creates, bundle.Joined(c1.Bundle, "sb1"))
	}
	// One that `start` joined already.
	c2 := container("c2", "sb1")
	if err := bundle.WriteJoined(c2.Bundle, "sb1"); err != nil {
		t.Fatal(err)
	}
	if err := j.Create(ctx, inst, c2); err != nil || joins != 1 {
		t.Fatalf("a container start joined: %v, joins %d", err, joins)
	}
	// The join hook's denial is the Create's.
	denied := errors.New("denied")
	jd := joiner{Hooks: joinHooks{joins: &joins, creates: &creates, refused: &refused, joinErr: denied}}
	if err := jd.Create(ctx, inst, container("c3", "sb1")); !errors.Is(err, denied) || bundle.Joined(filepath.Join(nsDir, "c3"), "sb1") {
		t.Fatalf("join hook's denial: %v", err)
	}

	creates = 0
	for _, tc := range []struct {
		name string
		ctx  context.Context
		inst *hooks.Instance
		req  *hooks.CreateRequest
		want string
	}{
		{"another pod's container", ctx, inst, container("x1", "sb9"), `naming pod "sb9"`},
		{"a pod sandbox", ctx, inst, func() *hooks.CreateRequest {
			r := container("x2", "x2")
			writeBundleSpec(t, r.Bundle, map[string]string{cri.ContainerType: "sandbox", cri.SandboxID: "x2"})
			return r
		}(), "reached the wrapper of pod sb1"},
		{"another namespace", ttrpc.WithMetadata(context.Background(), ttrpc.MD{namespaces.TTRPCHeader: []string{"default"}}), inst, container("x3", "sb1"), "of namespace default"},
		{"a bundle elsewhere", ctx, inst, func() *hooks.CreateRequest {
			b := filepath.Join(t.TempDir(), "x4")
			writeBundleSpec(t, b, map[string]string{cri.ContainerType: "container", cri.SandboxID: "sb1"})
			return &hooks.CreateRequest{ID: "x4", Bundle: b}
		}(), "not in the pod's namespace directory"},
		{"a standalone container's wrapper", ctx, func() *hooks.Instance { i := *inst; i.Sandbox = false; return &i }(), container("x5", "sb1"), "standalone container"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused = nil
			err := j.Create(tc.ctx, tc.inst, tc.req)
			if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create: %v, want permission denied saying %q", err, tc.want)
			}
			if creates != 0 || bundle.Joined(tc.req.Bundle, "sb1") {
				t.Fatal("the create hook ran, or the container was marked joined")
			}
			if len(refused) != 1 || refused[0].Call != "join" || refused[0].ID != tc.req.ID || refused[0].SandboxID != "sb1" {
				t.Fatalf("refusals told to the hooks: %+v", refused)
			}
		})
	}
}
