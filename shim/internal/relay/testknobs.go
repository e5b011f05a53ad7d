//go:build isoguard_testknobs

package relay

import (
	"os"
	"time"
)

// TestConnectTimeoutEnv, in a build for tests only (go build -tags isoguard_testknobs;
// never a release build), replaces ConnectTimeout, so that a test of a delegate that never
// answers its first handshake takes seconds instead of 30 s (integration/fault_test.go).
// A value that does not parse as a positive duration is ignored.
const TestConnectTimeoutEnv = "ISOGUARD_TEST_CONNECT_TIMEOUT"

func init() {
	if d, err := time.ParseDuration(os.Getenv(TestConnectTimeoutEnv)); err == nil && d > 0 {
		connectTimeout = d
	}
}
