//go:build isoguard_testknobs

package shim

import (
	"os"
	"time"
)

// TestDelegateStartTimeoutEnv, in a build for tests only (go build -tags
// isoguard_testknobs; never a release build), replaces the bound on the delegate's
// `start` (2 min), so that a test of a delegate whose start never answers takes seconds
// (integration/fault_test.go). A value that does not parse as a positive duration, or one
// above the bound, is ignored.
const TestDelegateStartTimeoutEnv = "ISOGUARD_TEST_DELEGATE_START_TIMEOUT"

func init() {
	if d, err := time.ParseDuration(os.Getenv(TestDelegateStartTimeoutEnv)); err == nil && d > 0 && d < delegateStartBound {
		delegateStartTimeout = d
	}
}
