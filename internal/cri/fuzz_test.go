package cri

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
)

// runhcsSandboxTypeAndID is runhcs's reading of the same annotations (hcsshim v0.15.0
// internal/oci/sandbox.go GetSandboxTypeAndID, not importable), the behaviour ParseRole
// must reproduce: runhcs decides from these annotations whether a task is a pod's sandbox,
// a container joining one, or standalone.
func runhcsSandboxTypeAndID(a map[string]string) (string, string, error) {
	var ct string
	if t, ok := a[ContainerType]; ok {
		switch t {
		case ContainerTypeContainer, ContainerTypeSandbox:
			ct = t
		default:
			return "", "", errors.New("invalid type")
		}
	}
	id := a[SandboxID]
	switch ct {
	case ContainerTypeContainer, ContainerTypeSandbox:
		if id == "" {
			return "", "", errors.New("type without id")
		}
	default:
		if id != "" {
			return "", "", errors.New("id without type")
		}
	}
	return ct, id, nil
}

// FuzzParseRole: ParseRole never panics, fails with errdefs.ErrInvalidArgument exactly when
// runhcs refuses the annotations, otherwise returns runhcs's role and sandbox id, and does
// not depend on other annotations:
//
//	go test ./internal/cri -run '^$' -fuzz '^FuzzParseRole$' -fuzztime 1000000x
func FuzzParseRole(f *testing.F) {
	f.Add(true, "sandbox", true, "5c7e0f9a2b4d", SandboxNamespace, "team-a")
	f.Add(true, "container", true, "5c7e0f9a2b4d", ContainerName, "app")
	f.Add(false, "", false, "", "io.microsoft.virtualmachine.computetopology.processor.count", "2")
	f.Add(true, "Sandbox", true, "sb1", "", "")
	f.Add(true, "container", false, "", "", "")
	f.Add(false, "", true, "sb1", "", "")
	f.Add(true, "sandbox", true, "", SandboxUID, "3f1c2a4e-9b7d-4e1a-8c6f-2d5e7a9b0c1d")
	f.Add(false, "", true, "", ContainerType, "sandbox")

	f.Fuzz(func(t *testing.T, hasType bool, typ string, hasID bool, id, otherKey, otherValue string) {
		a := map[string]string{}
		if otherKey != "" {
			a[otherKey] = otherValue
		}
		if hasType {
			a[ContainerType] = typ
		}
		if hasID {
			a[SandboxID] = id
		}
		role, sid, err := ParseRole(a)
		wantType, wantID, wantErr := runhcsSandboxTypeAndID(a)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("ParseRole(%q) = %q %q %v; runhcs: %q %q %v", a, role, sid, err, wantType, wantID, wantErr)
		}
		if err != nil {
			if !errdefs.IsInvalidArgument(err) || role != "" || sid != "" {
				t.Fatalf("ParseRole(%q) = %q %q %v: an error must wrap ErrInvalidArgument and say nothing else", a, role, sid, err)
			}
			return
		}
		want := map[string]Role{"": RoleStandalone, ContainerTypeSandbox: RoleSandbox, ContainerTypeContainer: RoleContainer}[wantType]
		if role != want || sid != wantID {
			t.Fatalf("ParseRole(%q) = %q %q; runhcs: %q %q", a, role, sid, wantType, wantID)
		}
		if role.IsWorkload() != (role == RoleContainer) || (role == RoleStandalone) != (sid == "") {
			t.Fatalf("ParseRole(%q) = %q %q: inconsistent", a, role, sid)
		}
		// Other annotations do not matter.
		if otherKey != ContainerType && otherKey != SandboxID {
			delete(a, otherKey)
			if r2, s2, e2 := ParseRole(a); r2 != role || s2 != sid || e2 != nil {
				t.Fatalf("ParseRole depends on annotation %q: %q %q %v vs %q %q", otherKey, r2, s2, e2, role, sid)
			}
		}
	})
}
