package shim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"time"

	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
)

// delegateInfo runs `<delegate> -info` (shims built on containerd's pkg/shim support it;
// runhcs does not, which is fine: the wrapper then answers for itself).
func delegateInfo(ctx context.Context, path string, stdin io.Reader) (*apitypes.RuntimeInfo, error) {
	opts, err := io.ReadAll(io.LimitReader(stdin, maxStdin))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-info")
	cmd.Stdin = bytes.NewReader(opts)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -info: %w", path, err)
	}
	var ri apitypes.RuntimeInfo
	if err := proto.Unmarshal(out, &ri); err != nil {
		return nil, fmt.Errorf("%s -info printed no RuntimeInfo: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return &ri, nil
}
