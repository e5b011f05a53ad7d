// Command containerd-shim-isoguard-v1 is the isoguard runtime v2 shim that containerd runs.
package main

import "github.com/isoguard/isoguard/shim"

func main() { shim.Main(shim.PassThrough{}) }
