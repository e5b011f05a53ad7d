package enforce

import (
	"os"
	"path/filepath"
)

// DefaultConfigPath is the node policy file's default location on Windows:
// %ProgramData%\isoguard\policy.yaml.
func DefaultConfigPath() string {
	pd := os.Getenv("ProgramData")
	if pd == "" {
		pd = `C:\ProgramData`
	}
	return filepath.Join(pd, "isoguard", "policy.yaml")
}
