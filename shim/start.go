package shim

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/shim/hooks"
	"github.com/isoguard/isoguard/shim/internal/bootstrap"
	"github.com/isoguard/isoguard/shim/internal/transport"
)

// start is `start`. It prints nothing but the answer (containerd reads stdout and stderr
// combined): the wrapper's address with task API version 3 for containerd >= 2.3, else
// the plain address (version 2; bootstrap.AnswerVersion). A workload container joins its
// pod's wrapper; anything else gets a wrapper daemon of its own.
func start(ctx context.Context, f Flags, stdin io.Reader, stdout io.Writer, h hooks.Hooks) error {
	if err := f.validate(); err != nil {
		return err
	}
	sc, err := readStartContext(f, stdin)
	if err != nil {
		h.Refused(ctx, hooks.Refusal{Call: "start", Namespace: f.Namespace, ID: f.ID, Cause: err})
		return err
	}
	var answer bootstrap.Answer
	if sc.role.IsWorkload() {
		answer, err = joinPod(ctx, f, sc, h)
	} else {
		socket := transport.WrapperAddress(f.Address, f.Namespace, f.ID, sc.in.SocketDir())
		answer, err = spawnDaemon(f, sc.bundle, sc.data, socket)
	}
	if err != nil {
		return err
	}
	out, err := answer.Encode()
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// startContext is what both `start` and `serve` read first: stdin (raw and decoded), the
// bundle (the working directory containerd chose) and the container's role in a pod.
type startContext struct {
	data      []byte
	in        bootstrap.StartInput
	bundle    string
	role      cri.Role
	sandboxID string
}

func readStartContext(f Flags, stdin io.Reader) (startContext, error) {
	var sc startContext
	var err error
	if sc.data, err = io.ReadAll(io.LimitReader(stdin, bootstrap.MaxStdin+1)); err != nil {
		return sc, fmt.Errorf("read options from stdin: %w", err)
	}
	if sc.in, err = bootstrap.ParseStartInput(sc.data, f.ID, f.Namespace); err != nil {
		return sc, err
	}
	if sc.bundle, err = os.Getwd(); err != nil {
		return sc, err
	}
	spec, err := bundle.ReadSpecFile(sc.bundle)
	if err != nil {
		return sc, err
	}
	sc.role, sc.sandboxID, err = bundle.Role(spec)
	return sc, err
}
