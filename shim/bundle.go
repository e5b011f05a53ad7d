package shim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
)

// CRI annotations that group containers into pods (set by containerd's CRI plugin; the
// same keys as hcsshim pkg/annotations KubernetesContainerType / KubernetesSandboxID).
const (
	AnnotationContainerType = "io.kubernetes.cri.container-type"
	AnnotationSandboxID     = "io.kubernetes.cri.sandbox-id"

	ContainerTypeSandbox   = "sandbox"
	ContainerTypeContainer = "container"
)

// maxSpecSize bounds how much of config.json is read (threats T13: a huge config.json must
// fail with a clear error, not exhaust memory).
const maxSpecSize = 16 << 20

// readSpecFile reads <bundle>/config.json, bounded by maxSpecSize.
func readSpecFile(bundle string) ([]byte, error) {
	path := filepath.Join(bundle, "config.json")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read OCI spec: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSpecSize+1))
	if err != nil {
		return nil, fmt.Errorf("read OCI spec %s: %w", path, err)
	}
	if len(data) > maxSpecSize {
		return nil, fmt.Errorf("OCI spec %s is larger than %d bytes: %w", path, maxSpecSize, errdefs.ErrInvalidArgument)
	}
	return data, nil
}

// PodRole is what a container is in terms of CRI pods.
type PodRole struct {
	// Type is "", ContainerTypeSandbox or ContainerTypeContainer.
	Type string
	// SandboxID is the pod's sandbox id ("" for a standalone container).
	SandboxID string
}

// IsWorkload reports whether the container joins an existing pod.
func (r PodRole) IsWorkload() bool { return r.Type == ContainerTypeContainer }

// podRole reads the CRI grouping annotations of a spec. Like runhcs
// (internal/oci/sandbox.go GetSandboxTypeAndID), the type and the sandbox id must come
// together and the type must be one of the two known values; anything else is an error,
// never a guess.
func podRole(specJSON []byte) (PodRole, error) {
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(specJSON, &spec); err != nil {
		return PodRole{}, fmt.Errorf("OCI spec is not valid JSON: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	t, hasType := spec.Annotations[AnnotationContainerType]
	id := spec.Annotations[AnnotationSandboxID]
	switch {
	case hasType && t != ContainerTypeSandbox && t != ContainerTypeContainer:
		return PodRole{}, fmt.Errorf("annotation %s=%q is neither %q nor %q: %w", AnnotationContainerType, t, ContainerTypeSandbox, ContainerTypeContainer, errdefs.ErrInvalidArgument)
	case hasType && id == "":
		return PodRole{}, fmt.Errorf("annotation %s without %s: %w", AnnotationContainerType, AnnotationSandboxID, errdefs.ErrInvalidArgument)
	case !hasType && id != "":
		return PodRole{}, fmt.Errorf("annotation %s without %s: %w", AnnotationSandboxID, AnnotationContainerType, errdefs.ErrInvalidArgument)
	}
	if id != "" {
		if err := checkPathElement("annotation "+AnnotationSandboxID, id); err != nil {
			return PodRole{}, err
		}
	}
	return PodRole{Type: t, SandboxID: id}, nil
}
