package bootstrap

import (
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
)

func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  []byte
		want Answer
		err  bool
	}{
		{name: "plain unix (runc shim of containerd 1.x)", out: []byte("unix:///run/containerd/s/abc\n"), want: Answer{"unix:///run/containerd/s/abc", "ttrpc", 2}},
		{name: "plain pipe (runhcs)", out: []byte(`\\.\pipe\ProtectedPrefix\Administrators\containerd-shim-k8s.io-abc-pipe`), want: Answer{`\\.\pipe\ProtectedPrefix\Administrators\containerd-shim-k8s.io-abc-pipe`, "ttrpc", 2}},
		{name: "json v3", out: []byte(`{"version":3,"address":"unix:///run/containerd/s/x","protocol":"ttrpc"}`), want: Answer{"unix:///run/containerd/s/x", "ttrpc", 3}},
		{name: "protobuf (runc shim of containerd 2.3+)", out: mustMarshal(t, &bootapi.BootstrapResult{Version: 3, Address: "unix:///run/containerd/s/y", Protocol: "ttrpc"}), want: Answer{"unix:///run/containerd/s/y", "ttrpc", 3}},
		{name: "json grpc refused", out: []byte(`{"version":3,"address":"unix:///x","protocol":"grpc"}`), err: true},
		{name: "version 4 refused", out: mustMarshal(t, &bootapi.BootstrapResult{Version: 4, Address: "unix:///x", Protocol: "ttrpc"}), err: true},
		{name: "empty", out: []byte("  \n"), err: true},
		{name: "error text", out: []byte("failed to start: no such file"), err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAnswer(tc.out)
			if tc.err {
				if err == nil {
					t.Fatalf("want error, got %+v", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
