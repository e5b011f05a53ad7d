//go:build !windows

package bundle

import "os"

// replaceFile renames from over to atomically.
func replaceFile(from, to string) error { return os.Rename(from, to) }
