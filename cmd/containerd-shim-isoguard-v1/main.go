// Command containerd-shim-isoguard-v1 is the isoguard runtime v2 shim that containerd runs:
// the wrapper around the delegate shim (package shim), with the node policy enforced on
// start, Create, Exec and Update (package enforce).
package main

import (
	"github.com/isoguard/isoguard/internal/enforce"
	"github.com/isoguard/isoguard/shim"
)

func main() { shim.Main(enforce.New()) }
