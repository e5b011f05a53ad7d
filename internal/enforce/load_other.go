//go:build !windows

package enforce

// DefaultConfigPath is the node policy file's default location on Linux.
func DefaultConfigPath() string { return "/etc/isoguard/policy.yaml" }
