// Command testimage-tar builds the test image (integration/testimage as an OCI image-layout
// tarball, cached under $ISOGUARD_CACHE/testimage) and prints the tarball's path. The demo
// imports it with `ctr images import`.
package main

import (
	"fmt"
	"os"

	"github.com/isoguard/isoguard/integration/harness"
)

func main() {
	p, err := harness.BuildImageTar()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testimage-tar:", err)
		os.Exit(1)
	}
	fmt.Println(p)
}
