// Command containerd-shim-isoguard-v1 is the isoguard runtime v2 shim that containerd runs:
// the wrapper around the delegate shim, with the node policy enforced on start, Create,
// Exec and Update.
package main

import "github.com/isoguard/isoguard/shim"

func main() { shim.Main(shim.NewEnforcer()) }
