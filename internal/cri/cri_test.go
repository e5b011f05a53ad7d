package cri

import (
	"strings"
	"testing"

	"github.com/Microsoft/hcsshim/pkg/annotations"
	"github.com/containerd/errdefs"
)

func TestParseRole(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ann       map[string]string
		role      Role
		sandboxID string
		err       string
	}{
		{"standalone", nil, RoleStandalone, "", ""},
		{"other annotations", map[string]string{SandboxNamespace: "team-a"}, RoleStandalone, "", ""},
		{"sandbox", map[string]string{ContainerType: "sandbox", SandboxID: "sb1"}, RoleSandbox, "sb1", ""},
		{"workload", map[string]string{ContainerType: "container", SandboxID: "sb1"}, RoleContainer, "sb1", ""},
		{"type without id", map[string]string{ContainerType: "container"}, "", "", "without"},
		{"sandbox without id", map[string]string{ContainerType: "sandbox"}, "", "", "without"},
		{"id without type", map[string]string{SandboxID: "sb1"}, "", "", "without"},
		{"unknown type", map[string]string{ContainerType: "Sandbox", SandboxID: "sb1"}, "", "", "neither"},
	} {
		role, id, err := ParseRole(tc.ann)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s: got %q %q, %v; want invalid argument containing %q", tc.name, role, id, err, tc.err)
			}
			continue
		}
		if err != nil || role != tc.role || id != tc.sandboxID {
			t.Errorf("%s: got %q %q, %v; want %q %q", tc.name, role, id, err, tc.role, tc.sandboxID)
		}
	}
}

// TestKeysAreCRIs: the keys hcsshim exports are the ones runhcs reads; the others are
// containerd's (internal/cri/annotations, not importable).
func TestKeysAreCRIs(t *testing.T) {
	if ContainerType != "io.kubernetes.cri.container-type" || SandboxID != "io.kubernetes.cri.sandbox-id" {
		t.Fatal("hcsshim's CRI keys changed")
	}
	if ContainerType != annotations.KubernetesContainerType || SandboxID != annotations.KubernetesSandboxID {
		t.Fatal("not hcsshim's constants")
	}
	for _, k := range []string{SandboxNamespace, SandboxName, SandboxUID, ContainerName} {
		if !strings.HasPrefix(k, "io.kubernetes.cri.") {
			t.Errorf("%s is not a CRI annotation", k)
		}
	}
}
