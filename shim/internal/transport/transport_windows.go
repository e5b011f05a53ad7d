package transport

import (
	"fmt"
	"net"
	"time"

	"github.com/Microsoft/go-winio"
	"github.com/containerd/ttrpc"
)

// PipeSDDL admits only SYSTEM and the Administrators group, with no inheritance: the same
// population that may create pipes under ProtectedPrefix\Administrators, where runhcs puts
// its own pipe (cmd/containerd-shim-runhcs-v1/start.go). Tenants and ContainerUser cannot
// open it (threats T12).
const PipeSDDL = "D:P(A;;GA;;;SY)(A;;GA;;;BA)"

// WrapperAddress is the wrapper's own pipe. It lives under ProtectedPrefix\Administrators
// like runhcs's, but its name ("isoguard-shim-...") can never be runhcs's
// ("containerd-shim-<ns>-<id>-pipe").
func WrapperAddress(_, namespace, id, _ string) string {
	return fmt.Sprintf(`\\.\pipe\ProtectedPrefix\Administrators\isoguard-shim-%s-%s-pipe`, namespace, id)
}

func Listen(address string) (net.Listener, error) {
	return winio.ListenPipe(address, &winio.PipeConfig{SecurityDescriptor: PipeSDDL})
}

func Dial(address string, timeout time.Duration) (net.Conn, error) {
	return winio.DialPipe(address, &timeout)
}

// RemoveAddress: a pipe disappears with its last handle.
func RemoveAddress(string) error { return nil }

// RemoveDeadSocket: a named pipe ends with its last handle; nothing to remove.
func RemoveDeadSocket(string) error { return nil }

func ServerOptions() []ttrpc.ServerOpt { return nil }

// Handshaker: none; the pipe's security descriptor admits only SYSTEM and Administrators.
func Handshaker() ttrpc.Handshaker { return nil }
