package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/internal/jsonedit"
)

// FuzzSpec feeds arbitrary config.json bytes to what the wrapper and the enforcer decode
// from a bundle: DecodeSpec (ReadSpec's decoder) and Role (the shim's start and delete).
// Properties: no panic; every error wraps errdefs.ErrInvalidArgument (fail closed, never a
// guess); a decoded spec was a JSON object; what WriteSpec writes for the delegate (the
// decision's changes applied to the original bytes, jsonedit.Rewrite), unchanged or with
// changes of the kinds the policy makes, decodes to exactly the decided spec, or the rewrite
// fails closed; Role reads the same role from the original bytes and from the rewritten
// ones, and agrees with cri.ParseRole on the decoded spec's annotations:
//
//	go test ./internal/bundle -run '^$' -fuzz '^FuzzSpec$' -fuzztime 1000000x
func FuzzSpec(f *testing.F) {
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
	for _, platform := range []string{"linux/amd64", "windows/amd64"} {
		for _, ann := range []map[string]string{
			nil,
			{cri.ContainerType: cri.ContainerTypeSandbox, cri.SandboxID: "5c7e0f9a2b4d", cri.SandboxNamespace: "team-a", cri.SandboxUID: "3f1c2a4e-9b7d-4e1a-8c6f-2d5e7a9b0c1d"},
			{cri.ContainerType: cri.ContainerTypeContainer, cri.SandboxID: "5c7e0f9a2b4d", cri.ContainerName: "app"},
			{cri.ContainerType: cri.ContainerTypeContainer, cri.SandboxID: "../default/sb1"},
			{cri.SandboxID: "sb1"},
		} {
			s, err := oci.GenerateSpecWithPlatform(ctx, nil, platform, &containers.Container{ID: "c1"}, oci.WithAnnotations(ann))
			if err != nil {
				f.Fatal(err)
			}
			b, err := json.Marshal(s)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	// Specs as the policy's golden fixtures hold them (containerd's CRI plugin on Windows
	// and Linux).
	for _, fixture := range []string{"untrusted.hostpath/pass/own-pod-dir.json", "untrusted.hostpath/pass/linux-cri-mounts.json", "untrusted.user/fail/linux-root.json"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "policy", "testdata", fixture))
		if err != nil {
			continue
		}
		var fx struct {
			Input struct {
				Spec json.RawMessage `json:"spec"`
			} `json:"input"`
		}
		if json.Unmarshal(data, &fx) == nil && len(fx.Input.Spec) > 0 {
			f.Add([]byte(fx.Input.Spec))
		}
	}
	for _, s := range []string{
		`{}`, `null`, ` {"annotations":null}`, `[]`, `"x"`, `{"annotations":{"a":1}}`, `{not json`,
		`{"annotations":{"io.kubernetes.cri.container-type":"container"},"Annotations":{"io.kubernetes.cri.sandbox-id":"sb1"}}`,
		`{"ANNOTATIONS":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"sb1"},"annotations":null}`,
		`{"process":5,"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"sb1"}}`,
		"{\"annotations\":{\"io.kubernetes.cri.container-type\":\"sandbox\",\"io.kubernetes.cri.sandbox-id\":\"s\xffb\"}}",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		role, sandboxID, roleErr := Role(data)
		if roleErr != nil && !errdefs.IsInvalidArgument(roleErr) {
			t.Fatalf("Role: %v does not wrap ErrInvalidArgument", roleErr)
		}
		if roleErr == nil {
			switch {
			case role == cri.RoleStandalone && sandboxID != "":
				t.Fatalf("Role: standalone with sandbox id %q", sandboxID)
			case role == cri.RoleSandbox || role == cri.RoleContainer:
				if err := CheckPathElement("sandbox id", sandboxID); err != nil {
					t.Fatalf("Role: %s with sandbox id that is not one path element: %v", role, err)
				}
			case role != cri.RoleStandalone:
				t.Fatalf("Role: unknown role %q", role)
			}
		}

		spec, err := DecodeSpec(data)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("DecodeSpec: %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if spec == nil {
			t.Fatal("DecodeSpec: nil spec without an error")
		}
		if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatalf("DecodeSpec accepted %q, which is not a JSON object", data)
		}
		// What WriteSpec writes for the delegate: the decision's changes applied to the
		// bytes containerd wrote (jsonedit). Unchanged, and with changes of the kinds the
		// policy makes (an annotation removed and one added, the user, a mount dropped), the
		// delegate's decoder (encoding/json, as runc's and runhcs's) reads exactly the
		// decided spec.
		written := rewrite(t, data, spec, spec)
		changed := specClone(t, spec)
		if len(changed.Annotations) > 0 {
			delete(changed.Annotations, slices.Sorted(maps.Keys(changed.Annotations))[0])
		}
		if changed.Annotations == nil {
			changed.Annotations = map[string]string{}
		}
		changed.Annotations["io.isoguard.fuzz"] = "added"
		if changed.Process == nil {
			changed.Process = &specs.Process{}
		}
		changed.Process.User = specs.User{UID: 65534, GID: 65534, Username: "ContainerUser"}
		if n := len(changed.Mounts); n > 0 {
			changed.Mounts = changed.Mounts[:n-1]
		}
		rewrite(t, data, spec, changed)
		// The role of the original bytes (the shim's start), of the spec the enforcer
		// decoded (the policy's checkRole) and of the rewritten config.json agree.
		wantRole, wantID, wantErr := cri.ParseRole(spec.Annotations)
		if wantErr == nil && wantRole != cri.RoleStandalone {
			wantErr = CheckPathElement("annotation "+cri.SandboxID, wantID)
		}
		if (roleErr == nil) != (wantErr == nil) || role != wantRole && wantErr == nil || sandboxID != wantID && wantErr == nil {
			t.Fatalf("Role(bytes) = %q %q %v, but the decoded spec's annotations say %q %q %v", role, sandboxID, roleErr, wantRole, wantID, wantErr)
		}
		if written == nil {
			return
		}
		role2, id2, err2 := Role(written)
		if role2 != role || id2 != sandboxID || (err2 == nil) != (roleErr == nil) {
			t.Fatalf("Role(original) = %q %q %v, Role(rewritten) = %q %q %v", role, sandboxID, roleErr, role2, id2, err2)
		}
	})
}

// specClone is a deep copy of s (through JSON).
func specClone(t *testing.T, s *specs.Spec) *specs.Spec {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("a decoded spec does not encode: %v", err)
	}
	var c specs.Spec
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("a re-encoded spec %s does not decode: %v", b, err)
	}
	return &c
}

// rewrite is what WriteSpec writes for a spec decoded from data and changed to changed; it
// must decode (DecodeSpec) to exactly changed, or the rewrite must fail closed.
func rewrite(t *testing.T, data []byte, spec, changed *specs.Spec) []byte {
	want, err := json.Marshal(changed)
	if err != nil {
		t.Fatalf("a changed spec does not encode: %v", err)
	}
	written, err := jsonedit.Rewrite(data, spec, changed)
	if err != nil {
		if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("Rewrite: %v does not wrap ErrInvalidArgument", err)
		}
		return nil
	}
	again, err := DecodeSpec(written)
	if err != nil {
		t.Fatalf("the rewritten spec %s does not decode: %v", written, err)
	}
	if got, err := json.Marshal(again); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%q rewritten to %s reads as\n%s\nnot as the decided\n%s (%v)", data, written, got, want, err)
	}
	return written
}
