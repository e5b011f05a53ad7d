package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/isoguard/isoguard/version"
)

func runVersion(_ []string, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "isoguard %s (revision %s, %s, %s/%s)\n", version.Version, version.Revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
