// Package cri holds the facts isoguard reads from containerd's CRI plugin: the annotations
// it puts on every pod sandbox and container spec, and what they say about a container's
// place in a pod. It is the one definition of these keys for the wrapper, the enforcer, the
// policy and the tests.
//
// The keys are containerd's (internal/cri/annotations/annotations.go in v2.4.2, the same
// since 1.x; that package is internal to containerd). hcsshim exports the first two as
// pkg/annotations KubernetesContainerType and KubernetesSandboxID, which are used here.
package cri

import (
	"fmt"

	"github.com/Microsoft/hcsshim/pkg/annotations"
	"github.com/containerd/errdefs"
)

// Annotations the CRI plugin sets.
const (
	// ContainerType is "sandbox" on a pod's sandbox and "container" on its workloads.
	ContainerType = annotations.KubernetesContainerType
	// SandboxID is the pod sandbox's id, on the sandbox and on every container of the pod.
	SandboxID = annotations.KubernetesSandboxID
	// SandboxNamespace, SandboxName and SandboxUID are the pod's Kubernetes namespace, name
	// and uid.
	SandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	SandboxName      = "io.kubernetes.cri.sandbox-name"
	SandboxUID       = "io.kubernetes.cri.sandbox-uid"
	// ContainerName is the container's name in the pod spec (workload containers only).
	ContainerName = "io.kubernetes.cri.container-name"
)

// Values of the ContainerType annotation.
const (
	ContainerTypeSandbox   = "sandbox"
	ContainerTypeContainer = "container"
)

// DefaultNamespace is the containerd namespace of containerd's CRI plugin.
const DefaultNamespace = "k8s.io"

// Role is a container's place in a CRI pod.
type Role string

const (
	// RoleStandalone: no CRI pod annotations (ctr, nerdctl, other clients).
	RoleStandalone Role = "standalone"
	// RoleSandbox: a pod's sandbox (ContainerType "sandbox").
	RoleSandbox Role = "sandbox"
	// RoleContainer: a workload container that joins its pod (ContainerType "container").
	RoleContainer Role = "container"
)

// IsWorkload reports whether a container of this role joins an existing pod.
func (r Role) IsWorkload() bool { return r == RoleContainer }

// ParseRole reads a container's role and its pod's sandbox id from its spec's annotations.
// Like runhcs (internal/oci/sandbox.go GetSandboxTypeAndID), the type and the sandbox id
// must come together and the type must be one of the two known values; anything else is
// an error wrapping errdefs.ErrInvalidArgument, never a guess. A standalone container has
// sandbox id "".
func ParseRole(a map[string]string) (Role, string, error) {
	t, hasType := a[ContainerType]
	id := a[SandboxID]
	switch {
	case hasType && t != ContainerTypeSandbox && t != ContainerTypeContainer:
		return "", "", fmt.Errorf("annotation %s=%q is neither %q nor %q: %w", ContainerType, t, ContainerTypeSandbox, ContainerTypeContainer, errdefs.ErrInvalidArgument)
	case hasType && id == "":
		return "", "", fmt.Errorf("annotation %s without %s: %w", ContainerType, SandboxID, errdefs.ErrInvalidArgument)
	case !hasType && id != "":
		return "", "", fmt.Errorf("annotation %s without %s: %w", SandboxID, ContainerType, errdefs.ErrInvalidArgument)
	case !hasType:
		return RoleStandalone, "", nil
	case t == ContainerTypeSandbox:
		return RoleSandbox, id, nil
	}
	return RoleContainer, id, nil
}
