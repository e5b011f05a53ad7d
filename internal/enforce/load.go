package enforce

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/isoguard/isoguard/policy"
)

// ConfigEnv overrides the node policy file's path. containerd passes its own environment to
// shims, so setting it for containerd (service environment) reaches the wrapper.
const ConfigEnv = "ISOGUARD_CONFIG"

// maxConfigSize bounds the node policy file.
const maxConfigSize = 4 << 20

// ConfigPath is the node policy file in effect: $ISOGUARD_CONFIG, else the OS default
// (DefaultConfigPath in load_<os>.go).
func ConfigPath() string {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p
	}
	return DefaultConfigPath()
}

// ReadConfig reads the node policy file, bounded in size. A missing file is
// errdefs.ErrNotFound (the caller decides what that means); every other failure names the
// file.
func ReadConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("node policy file %s does not exist: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("node policy file %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("node policy file %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("node policy file %s is larger than %d bytes: %w", path, maxConfigSize, errdefs.ErrInvalidArgument)
	}
	return data, nil
}

// LoadConfig reads and parses the node policy file as the wrapper does; the operator's
// tool uses it too. Errors are those of ReadConfig, or the file's problems naming the file,
// line and field (errdefs.ErrInvalidArgument).
func LoadConfig(path string) (*policy.File, error) {
	data, err := ReadConfig(path)
	if err != nil {
		return nil, err
	}
	f, err := policy.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("node policy file %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return f, nil
}

// Platform is the rule profile a policy file selects: its `platform`, or, when it names
// none, the OS the wrapper runs on. The profile is configuration, not a guess from the
// delegate's name: a Linux node's untrusted pods go to a sandbox runtime's shim, trusted
// ones to runc's, and both are judged by the Linux profile.
func Platform(f *policy.File) policy.Platform {
	if f != nil && f.Platform != "" {
		return f.Platform
	}
	return policy.Platform(runtime.GOOS)
}

// Compile parses and compiles a policy file's content for the platform it selects.
func Compile(path string, data []byte) (*policy.File, *policy.Policy, error) {
	f, err := policy.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("node policy file %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	p, err := policy.Compile(f, Platform(f))
	if err != nil {
		return nil, nil, fmt.Errorf("node policy file %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return f, p, nil
}

// loaded is one version of the policy file: its content and what it compiled to.
type loaded struct {
	path   string
	data   []byte
	file   *policy.File
	policy *policy.Policy
	err    error
}

// cache keeps the last version of the policy file. Every decision reads the file (a few
// KiB, bounded) and compiles it again only when its content changed: a decision is never
// made with a file that is not the one on disk, whatever its modification time says.
type cache struct {
	mu   sync.Mutex
	last *loaded
}

// current returns the policy in effect. A missing, unreadable or invalid file is an error
// naming the file and the problem; the caller denies (fail closed).
func (c *cache) current() *loaded {
	path := ConfigPath()
	data, err := ReadConfig(path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && c.last != nil && c.last.path == path && c.last.err == nil && bytes.Equal(c.last.data, data) {
		return c.last
	}
	l := &loaded{path: path, data: data}
	if err == nil {
		l.file, l.policy, err = Compile(path, data)
	}
	if err != nil {
		if errdefs.IsNotFound(err) {
			err = fmt.Errorf("%w; isoguard denies every workload until a valid policy is installed", err)
		}
		l.err = err
	}
	c.last = l
	return l
}
