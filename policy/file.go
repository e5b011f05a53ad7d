// Package policy is isoguard's node policy: the file format and the decisions. It is pure:
// bytes or values in, values out; no I/O, no logging, no ttrpc.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// APIVersion and Kind identify the node policy file format.
const (
	APIVersion = "isoguard.dev/v1alpha1"
	Kind       = "NodePolicy"
)

// File is the node policy file: one per node. It also carries the wrapper's own settings
// (the delegate shim), so an operator has one file to manage.
type File struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Delegate   Delegate `yaml:"delegate"`
}

// Delegate configures the shim isoguard runs and forwards to.
type Delegate struct {
	// Path is the absolute path of the delegate shim binary. Empty: the OS default
	// (Windows: containerd-shim-runhcs-v1.exe beside containerd, then PATH; Linux:
	// containerd-shim-runc-v2 on PATH).
	Path string `yaml:"path"`
	// StdinFormat is how start's runtime options are handed to the delegate: "auto"
	// (default), "any" (bare protobuf Any: runhcs, shims of containerd < 2.3) or
	// "bootstrap" (BootstrapParams: shims of containerd >= 2.3).
	StdinFormat string `yaml:"stdinFormat"`
}

// ErrInvalid is wrapped by every error about the file's content.
var ErrInvalid = errors.New("invalid node policy")

// Parse decodes a node policy file strictly: unknown keys, wrong types, a second document
// and a wrong apiVersion/kind are errors that name the line or field.
func Parse(data []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrInvalid)
	}
	if f.APIVersion != APIVersion {
		return nil, fmt.Errorf("%w: apiVersion is %q, expected %q", ErrInvalid, f.APIVersion, APIVersion)
	}
	if f.Kind != Kind {
		return nil, fmt.Errorf("%w: kind is %q, expected %q", ErrInvalid, f.Kind, Kind)
	}
	switch f.Delegate.StdinFormat {
	case "", "auto", "any", "bootstrap":
	default:
		return nil, fmt.Errorf("%w: delegate.stdinFormat is %q, expected auto, any or bootstrap", ErrInvalid, f.Delegate.StdinFormat)
	}
	return &f, nil
}
