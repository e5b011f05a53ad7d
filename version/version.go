// Package version holds isoguard's version, set at build time with
// -ldflags "-X github.com/isoguard/isoguard/version.Version=... -X ...Revision=...".
package version

var (
	// Version of isoguard.
	Version = "0.1.0-dev"
	// Revision is the git commit the binary was built from.
	Revision = "unknown"
)
