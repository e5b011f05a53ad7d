package bundle

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// replaceFile renames from over to. Windows refuses to replace a file another process has
// open without FILE_SHARE_DELETE (Go's os.Open does not pass it): a reader of the record
// (a workload's `start`, an operator, a test) makes the rename fail for as long as it holds
// the file, so the rename is retried for a while.
func replaceFile(from, to string) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := os.Rename(from, to)
		if err == nil || time.Now().After(deadline) ||
			!(errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_SHARING_VIOLATION)) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
