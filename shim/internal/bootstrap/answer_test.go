package bootstrap

import (
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/isoguard/isoguard/shim/hooks"
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

// TestAnswerEncodeRoundTrips: what the wrapper answers reads back (the way containerd reads
// it) as the same address and version.
func TestAnswerEncodeRoundTrips(t *testing.T) {
	for _, a := range []Answer{
		{Address: "unix:///run/containerd/s/0123abcd", Version: 2},
		{Address: "unix:///run/containerd/s/0123abcd", Version: 3},
		{Address: `\\.\pipe\ProtectedPrefix\Administrators\isoguard-shim-k8s.io-abc-pipe`, Version: 3},
	} {
		out, err := a.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseAnswer(out)
		if err != nil || got.Address != a.Address || got.Version != a.Version || got.Protocol != "ttrpc" {
			t.Errorf("%+v encoded as %q reads back as %+v, %v", a, out, got, err)
		}
	}
}

func TestAnswerVersion(t *testing.T) {
	for f, want := range map[hooks.StdinFormat]int{hooks.StdinBootstrap: 3, hooks.StdinAny: 2, hooks.StdinEmpty: 2} {
		if got := AnswerVersion(StartInput{Format: f}); got != want {
			t.Errorf("stdin %s: answer version %d, want %d", f, got, want)
		}
	}
}
