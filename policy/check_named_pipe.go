package policy

import "fmt"

/*
Untrusted workloads may not mount Windows named pipes. runhcs forwards a host pipe into the
utility VM (internal/uvm/pipes.go, resources_wcow.go AddPipe), so Hyper-V does not protect
it: a mounted \\.\pipe\docker_engine, \\.\pipe\containerd-containerd or the wrapper's own
pipe hands the host to the container. Every spelling is caught: \\.\pipe\, //./pipe/,
\\?\pipe\, \??\pipe\ (any letter case) and pipes reached over SMB (\\server\pipe\...,
\\server\IPC$\...).

**Restricted Fields:**

spec.mounts[*].source (Windows)

**Allowed Values:** none that is a named pipe
*/

var ruleNamedPipe = &rule{
	id:        "untrusted.named-pipe",
	threats:   []string{"T9"},
	platforms: []Platform{Windows},
	calls:     []Call{CallStart, CallCreate},
	action:    "denial",
	summary:   "named pipe mounts (\\\\.\\pipe\\..., every spelling) are denied",
	check:     checkNamedPipe,
}

func checkNamedPipe(ev *evaluation) {
	for i := range ev.in.Spec.Mounts {
		m := &ev.in.Spec.Mounts[i]
		if ev.mountInfos()[i].class == mountPipe {
			ev.deny(fmt.Sprintf("mounts[%d].source", i), "mount of named pipe %s is not allowed", m.Source)
		}
	}
}
