package shim

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// checkPathElement rejects values that are used as one element of a file path (ids,
// namespaces, sandbox ids from annotations) but could name another directory.
func checkPathElement(what, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%s is empty: %w", what, errdefs.ErrInvalidArgument)
	case v == "." || v == "..":
		return fmt.Errorf("%s %q is not a valid identifier: %w", what, v, errdefs.ErrInvalidArgument)
	case strings.ContainsAny(v, `/\:`+"\x00"):
		return fmt.Errorf("%s %q contains a path separator: %w", what, v, errdefs.ErrInvalidArgument)
	case len(v) > 255:
		return fmt.Errorf("%s is %d bytes long (at most 255): %w", what, len(v), errdefs.ErrInvalidArgument)
	}
	return nil
}
