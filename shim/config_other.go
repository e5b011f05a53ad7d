//go:build !windows

package shim

// DefaultConfigPath is the node policy file's default location on Linux.
func DefaultConfigPath() string { return "/etc/isoguard/policy.yaml" }
