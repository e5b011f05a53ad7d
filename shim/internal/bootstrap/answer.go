package bootstrap

import (
	"bytes"
	"encoding/json"
	"fmt"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"

	"github.com/isoguard/isoguard/shim/hooks"
)

// Answer is a shim's answer to `start`: where it serves and which task API version.
type Answer struct {
	Address  string
	Protocol string
	Version  int
}

// ParseAnswer reads a `start` answer the way containerd does
// (core/runtime/v2/shim.go parseStartResponse): a protobuf BootstrapResult (shims of
// containerd >= 2.3), else JSON {"version","address","protocol"}, else a plain address,
// which means version 2 over ttrpc. Only ttrpc is supported, with version 2 or 3.
func ParseAnswer(out []byte) (Answer, error) {
	var br bootapi.BootstrapResult
	if err := proto.Unmarshal(out, &br); err == nil && br.GetAddress() != "" {
		return checkAnswer(Answer{Address: br.GetAddress(), Protocol: br.GetProtocol(), Version: int(br.GetVersion())})
	}
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 {
		return Answer{}, fmt.Errorf("delegate's start printed nothing: %w", errdefs.ErrInvalidArgument)
	}
	var j struct {
		Version  int    `json:"version"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal(trimmed, &j); err == nil && j.Version >= 2 {
		return checkAnswer(Answer{Address: j.Address, Protocol: j.Protocol, Version: j.Version})
	}
	if bytes.ContainsAny(trimmed, "\n\r\t ") {
		return Answer{}, fmt.Errorf("delegate's start answer is not an address: %q: %w", Truncate(string(trimmed), 200), errdefs.ErrInvalidArgument)
	}
	return checkAnswer(Answer{Address: string(trimmed), Protocol: "ttrpc", Version: 2})
}

// AnswerVersion is the task API version the wrapper answers containerd's `start` with.
// 3 when containerd is 2.3 or newer (it wrote BootstrapParams on stdin): containerd >= 2.0
// then reuses the pod's wrapper for the pod's workload containers, as it reuses the runc
// shim's, instead of running `start` for each (core/runtime/v2/shim_manager.go Start: a
// sandbox whose bootstrap.json says version >= 3). Else 2: containerd 1.x refuses versions
// above 2, and 2.0-2.2 cannot be told from 1.7 by what they send.
func AnswerVersion(in StartInput) int {
	if in.Format == hooks.StdinBootstrap {
		return 3
	}
	return 2
}

// Encode renders the wrapper's own answer as containerd reads it (parseStartResponse):
// version 2 as the plain address, version 3 as JSON {"version","address","protocol"},
// which containerd 2.0 and later read.
func (a Answer) Encode() ([]byte, error) {
	if a.Version == 2 {
		return []byte(a.Address), nil
	}
	return json.Marshal(struct {
		Version  int    `json:"version"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	}{a.Version, a.Address, "ttrpc"})
}

func checkAnswer(a Answer) (Answer, error) {
	if a.Protocol == "" {
		a.Protocol = "ttrpc"
	}
	if a.Protocol != "ttrpc" {
		return a, fmt.Errorf("delegate serves protocol %q; isoguard relays ttrpc only: %w", a.Protocol, errdefs.ErrNotImplemented)
	}
	if a.Version != 2 && a.Version != 3 {
		return a, fmt.Errorf("delegate answered task API version %d; isoguard speaks 2 and 3: %w", a.Version, errdefs.ErrNotImplemented)
	}
	if a.Address == "" {
		return a, fmt.Errorf("delegate answered an empty address: %w", errdefs.ErrInvalidArgument)
	}
	return a, nil
}

func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
