package policy

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Golden fixture cases of rule untrusted.named-pipe (testdata/untrusted.named-pipe/).
func namedPipeCases(add fixtureAdder) {
	podDir := `C:\var\lib\kubelet\pods\` + podUID
	const np = "untrusted.named-pipe"
	add(np, true, "dir-named-pipe", win, `a directory called "pipe" below the pod directory is not a pipe`, nil, func(t testing.TB) Input {
		return withMounts(winCreate(t), hostMount(podDir+`\volumes\pipe`))
	})
	for _, c := range []struct{ name, src, desc string }{
		{"docker-engine", `\\.\pipe\docker_engine`, "the Docker engine's pipe"},
		{"containerd", `\\.\pipe\containerd-containerd`, "containerd's pipe"},
		{"wrapper-pipe", `\\.\pipe\ProtectedPrefix\Administrators\containerd-shim-k8s.io-` + sandboxID + `-pipe`, "the shim's own pipe"},
		{"forward-slashes", "//./pipe/docker_engine", "the pipe spelled with '/'"},
		{"upper-case", `\\.\PIPE\docker_engine`, "the pipe in upper case"},
		{"verbatim", `\\?\pipe\docker_engine`, `the pipe through \\?\`},
		{"nt-namespace", `\??\pipe\docker_engine`, `the pipe through \??\`},
		{"smb-pipe", `\\localhost\pipe\docker_engine`, "the pipe over SMB"},
		{"ipc-share", `\\127.0.0.1\IPC$\docker_engine`, "the IPC$ share"},
	} {
		add(np, false, c.name, win, c.desc+": denied", T("T9"), func(t testing.TB) Input {
			return withMounts(winCreate(t), specs.Mount{Destination: `\\.\pipe\docker_engine`, Source: c.src})
		})
	}
}
