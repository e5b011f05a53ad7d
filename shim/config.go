package shim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/containerd/errdefs"

	"github.com/isoguard/isoguard/policy"
)

// ConfigEnv overrides the node policy file's path. containerd passes its own environment to
// shims, so setting it for containerd (service environment) reaches the wrapper.
const ConfigEnv = "ISOGUARD_CONFIG"

// maxConfigSize bounds the node policy file.
const maxConfigSize = 4 << 20

// ConfigPath is the node policy file in effect: $ISOGUARD_CONFIG, else the OS default
// (DefaultConfigPath in config_<os>.go).
func ConfigPath() string {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p
	}
	return DefaultConfigPath()
}

// LoadConfig reads and parses the node policy file (bounded in size), as the wrapper
// does; the operator's tool uses it too. A missing file is errdefs.ErrNotFound
// (the caller decides what that means); anything else that is wrong is an error naming the
// file and the problem.
func LoadConfig(path string) (*policy.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("node policy file %s does not exist: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("node policy file %s: %w", path, err)
	}
	if st.Size() > maxConfigSize {
		return nil, fmt.Errorf("node policy file %s is %d bytes, larger than %d: %w", path, st.Size(), maxConfigSize, errdefs.ErrInvalidArgument)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node policy file %s: %w", path, err)
	}
	f, err := policy.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("node policy file %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return f, nil
}

// delegateSettings returns the delegate section of the node policy file. A missing file
// means defaults; an unreadable or invalid one is an error (never half-read).
func delegateSettings() (policy.Delegate, error) {
	f, err := LoadConfig(ConfigPath())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return policy.Delegate{}, nil
		}
		return policy.Delegate{}, err
	}
	return f.Delegate, nil
}
