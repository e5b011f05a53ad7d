// Command ttrpc-echo serves one ttrpc method that returns its request, on the unix socket
// named by its only argument. The benchmark uses it to measure a bare ttrpc round trip to
// another process: the unit of the wrapper's added latency.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: ttrpc-echo SOCKET")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(2) // like a shim (containerd sets GOMAXPROCS=2 for shims)
	srv, err := ttrpc.NewServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv.Register("bench.Echo", map[string]ttrpc.Method{
		"Echo": func(ctx context.Context, unmarshal func(any) error) (any, error) {
			var req emptypb.Empty
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &req, nil
		},
	})
	l, err := net.Listen("unix", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	if err := srv.Serve(context.Background(), l); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
