package bundle

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/internal/jsonedit"
)

// MaxSpecSize bounds how much of config.json is read (threats T13: a huge config.json
// fails with a clear error instead of exhausting memory).
const MaxSpecSize = 16 << 20

// ReadSpecFile reads <bundle>/config.json, bounded by MaxSpecSize.
func ReadSpecFile(bundle string) ([]byte, error) {
	path := filepath.Join(bundle, SpecFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read OCI spec: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSpecSize+1))
	if err != nil {
		return nil, fmt.Errorf("read OCI spec %s: %w", path, err)
	}
	if len(data) > MaxSpecSize {
		return nil, fmt.Errorf("OCI spec %s is larger than %d bytes: %w", path, MaxSpecSize, errdefs.ErrInvalidArgument)
	}
	return data, nil
}

// Spec is a bundle's config.json: the bytes as containerd wrote them and what they decode
// to.
type Spec struct {
	Raw  []byte
	Spec *specs.Spec
}

// ReadSpec reads and decodes <bundle>/config.json (bounded, see ReadSpecFile).
func ReadSpec(bundle string) (*Spec, error) {
	data, err := ReadSpecFile(bundle)
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("OCI spec %s: %v: %w", filepath.Join(bundle, SpecFile), err, errdefs.ErrInvalidArgument)
	}
	return &Spec{Raw: data, Spec: &s}, nil
}

// WriteSpec replaces <bundle>/config.json atomically, keeping its file mode, with the
// changes from s.Spec to changed applied to the bytes s was read from: fields the
// runtime-spec types do not know survive (jsonedit).
func WriteSpec(bundle string, s *Spec, changed *specs.Spec) error {
	path := filepath.Join(bundle, SpecFile)
	data, err := jsonedit.Rewrite(s.Raw, s.Spec, changed)
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	return WriteFileAtomic(path, data, mode)
}

// Role reads a container's place in a pod from its spec (cri.ParseRole on the spec's
// annotations). The sandbox id names a sibling bundle, so it must be one path element.
func Role(specJSON []byte) (cri.Role, string, error) {
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(specJSON, &spec); err != nil {
		return "", "", fmt.Errorf("OCI spec is not valid JSON: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	role, sandboxID, err := cri.ParseRole(spec.Annotations)
	if err != nil {
		return "", "", err
	}
	if role != cri.RoleStandalone {
		if err := CheckPathElement("annotation "+cri.SandboxID, sandboxID); err != nil {
			return "", "", err
		}
	}
	return role, sandboxID, nil
}
