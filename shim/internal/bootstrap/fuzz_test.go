package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	hcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	rtopts "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/shim/hooks"
)

// The delegate's side of start's stdin, as containerd's shims read it (containerd v2.4.2):
// a 2.3+ shim's pkg/shim/compat.go parseBootstrapParams, and ReadRuntimeOptions
// (pkg/shim/util.go) of a shim that reads a bare Any.

var errDeprecatedBootstrapAPI = errors.New("not BootstrapParams")

func containerdParseBootstrapParams(input []byte, cliID, cliNamespace string) (*bootapi.BootstrapParams, error) {
	params := &bootapi.BootstrapParams{}
	if len(input) == 0 {
		return nil, errDeprecatedBootstrapAPI
	}
	if err := proto.Unmarshal(input, params); err != nil {
		return nil, err
	}
	if params.InstanceID != cliID || params.Namespace != cliNamespace {
		return nil, errDeprecatedBootstrapAPI
	}
	return params, nil
}

// containerdReadAny is ReadRuntimeOptions up to typeurl: nil when stdin is empty.
func containerdReadAny(data []byte) (*anypb.Any, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var a anypb.Any
	if err := proto.Unmarshal(data, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// startInputSeeds are stdin encodings containerd really writes (core/runtime/v2/command.go):
// a bare Any (typeurl of the CRI runtime options) to shims named *shim-runc-v1 / *shim-runhcs-v1
// and by containerd < 2.3; BootstrapParams with the options as the one extension otherwise.
func startInputSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	dir := "/run/containerd/s2"
	for _, o := range []proto.Message{
		&runcopts.Options{BinaryName: "/usr/local/bin/runsc", Root: "/run/containerd/runc", SystemdCgroup: true},
		&hcsopts.Options{SandboxIsolation: hcsopts.Options_HYPERVISOR, SandboxPlatform: "windows/amd64", DefaultContainerAnnotations: map[string]string{"io.microsoft.container.processor.count": "2"}},
		&rtopts.Options{TypeUrl: "io.containerd.runsc.v1.options", ConfigPath: "/etc/containerd/runsc.toml"},
		nil,
	} {
		var opts *anypb.Any
		if o != nil {
			var err error
			if opts, err = typeurl.MarshalAnyToProto(o); err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, mustMarshal2(t, opts))
		}
		params := &bootapi.BootstrapParams{InstanceID: "abc123", Namespace: "k8s.io", LogLevel: bootapi.LogLevel_LOG_LEVEL_DEBUG,
			ContainerdVersion: "v2.4.2", ContainerdGrpcAddress: "/run/containerd/containerd.sock",
			ContainerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc", ContainerdBinary: "/usr/bin/containerd", SocketDir: &dir}
		if opts != nil {
			if err := params.AddExtension(opts); err != nil {
				t.Fatal(err)
			}
		}
		seeds = append(seeds, mustMarshal2(t, params))
	}
	// Another instance, two extensions, an Any that reads as BootstrapParams of this
	// instance, garbage.
	seeds = append(seeds,
		mustMarshal2(t, &bootapi.BootstrapParams{InstanceID: "other", Namespace: "k8s.io"}),
		mustMarshal2(t, &anypb.Any{TypeUrl: "abc123", Value: []byte("k8s.io")}),
		[]byte("\xff\xff\xff\xff"), []byte("hello world"))
	two := &bootapi.BootstrapParams{InstanceID: "abc123", Namespace: "k8s.io"}
	_ = two.AddExtension(&runcopts.Options{})
	_ = two.AddExtension(&hcsopts.Options{})
	seeds = append(seeds, mustMarshal2(t, two))
	return seeds
}

func mustMarshal2(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseStartInput: start's stdin as containerd writes it, decoded and re-encoded for the
// delegate. Properties: no panic; errors wrap errdefs.ErrInvalidArgument; the format is the
// one a containerd 2.3+ shim would see (BootstrapParams exactly when parseBootstrapParams
// accepts them for this id and namespace, else a bare Any that ReadRuntimeOptions reads as
// the same options); options always carry a type URL; and Encode, for either format, with the
// options as received or as a start hook replaced them, gives the delegate exactly those
// options (and, as BootstrapParams, this instance's identity and every other field received):
//
//	go test ./shim/internal/bootstrap -run '^$' -fuzz '^FuzzParseStartInput$' -fuzztime 1000000x
func FuzzParseStartInput(f *testing.F) {
	for _, s := range startInputSeeds(f) {
		f.Add(s, "abc123", "k8s.io", false, "", []byte(nil))
	}
	f.Add(mustMarshal2(f, &bootapi.BootstrapParams{InstanceID: "abc123", Namespace: "k8s.io"}), "abc123", "k8s.io", true, "containerd.runhcs.v1.Options", []byte{0x08, 0x01})
	f.Add([]byte(nil), "abc123", "default", true, "containerd.runc.v1.Options", []byte{})

	f.Fuzz(func(t *testing.T, data []byte, id, ns string, replace bool, replURL string, replValue []byte) {
		in, err := ParseStartInput(data, id, ns)
		cd, cdErr := containerdParseBootstrapParams(data, id, ns)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
			if cdErr == nil && !strings.Contains(err.Error(), "extension") {
				t.Fatalf("refused %x, which a containerd shim reads as BootstrapParams for %q/%q: %v", data, id, ns, err)
			}
			return
		}
		switch in.Format {
		case hooks.StdinEmpty:
			if len(data) != 0 || in.Options != nil || in.Bootstrap != nil {
				t.Fatalf("empty format for %d bytes: %+v", len(data), in)
			}
		case hooks.StdinBootstrap:
			if cdErr != nil {
				t.Fatalf("read %x as BootstrapParams, which a containerd shim refuses for %q/%q: %v", data, id, ns, cdErr)
			}
			if in.Bootstrap.GetInstanceID() != id || in.Bootstrap.GetNamespace() != ns {
				t.Fatalf("BootstrapParams for %q/%q accepted for %q/%q", in.Bootstrap.GetInstanceID(), in.Bootstrap.GetNamespace(), id, ns)
			}
			var opts []*anypb.Any
			for _, e := range cd.GetExtensions() {
				if e.GetValue() != nil {
					opts = append(opts, e.GetValue())
				}
			}
			if len(opts) > 1 || len(opts) == 1 && !proto.Equal(opts[0], in.Options) || len(opts) == 0 && in.Options != nil {
				t.Fatalf("options %v, but the extensions are %v", in.Options, opts)
			}
		case hooks.StdinAny:
			if cdErr == nil {
				t.Fatalf("read %x as a bare Any, which a containerd 2.3+ shim reads as BootstrapParams for %q/%q", data, id, ns)
			}
			a, err := containerdReadAny(data)
			if err != nil || !proto.Equal(a, in.Options) {
				t.Fatalf("options %v, but ReadRuntimeOptions reads %v (%v)", in.Options, a, err)
			}
		default:
			t.Fatalf("unknown format %q", in.Format)
		}
		if in.Options != nil && in.Options.GetTypeUrl() == "" {
			t.Fatalf("runtime options without a type URL: %v", in.Options)
		}

		if !utf8.ValidString(id) || !utf8.ValidString(ns) {
			return // containerd's ids and namespaces are identifiers ([A-Za-z0-9._-]); protobuf strings are UTF-8
		}
		if replace {
			// What a start hook does: replace the options with ones it encoded.
			if replURL == "" || !utf8.ValidString(replURL) {
				return
			}
			in.Options = &anypb.Any{TypeUrl: replURL, Value: replValue}
		}
		l := Launch{ID: id, Namespace: ns, GRPCAddress: "/run/containerd/containerd.sock", TTRPCAddress: "/run/containerd/containerd.sock.ttrpc", ContainerdBinary: "/usr/bin/containerd", Debug: true}
		for _, format := range []hooks.StdinFormat{hooks.StdinAny, hooks.StdinBootstrap} {
			out, err := in.Encode(format, l)
			if err != nil {
				t.Fatalf("Encode(%s) of %+v: %v", format, in, err)
			}
			if format == hooks.StdinAny {
				a, err := containerdReadAny(out)
				if err != nil || !proto.Equal(a, in.Options) && !(a == nil && in.Options == nil) {
					t.Fatalf("the delegate reads %v (%v) from a bare Any; the options were %v", a, err, in.Options)
				}
				continue
			}
			p, err := containerdParseBootstrapParams(out, id, ns)
			if err != nil {
				t.Fatalf("a containerd 2.3+ delegate refuses the BootstrapParams for %q/%q: %v", id, ns, err)
			}
			switch n := len(p.GetExtensions()); {
			case in.Options == nil && n != 0, in.Options != nil && (n != 1 || !proto.Equal(p.GetExtensions()[0].GetValue(), in.Options)):
				t.Fatalf("the delegate reads extensions %v; the options were %v", p.GetExtensions(), in.Options)
			}
			if in.Bootstrap != nil {
				// Every other field as containerd sent it.
				want := proto.Clone(in.Bootstrap).(*bootapi.BootstrapParams)
				want.Extensions = nil
				p.Extensions = nil
				if !proto.Equal(p, want) {
					t.Fatalf("BootstrapParams changed on the way: %v, want %v", p, want)
				}
			}
		}
	})
}

// containerdParseStartResponse is containerd v2.4.2's reading of a shim's start answer
// (core/runtime/v2/shim.go parseStartResponse, CurrentShimVersion 3).
func containerdParseStartResponse(response []byte) (*bootapi.BootstrapResult, bool, error) {
	var result bootapi.BootstrapResult
	if err := proto.Unmarshal(response, &result); err == nil {
		return &result, true, nil
	}
	response = bytes.TrimSpace(response)
	params := &bootapi.BootstrapResult{}
	if err := json.Unmarshal(response, params); err != nil || params.Version < 2 {
		params = &bootapi.BootstrapResult{Address: string(response), Protocol: "ttrpc", Version: 2}
	}
	if params.Version > 3 {
		return nil, false, errdefs.ErrNotImplemented
	}
	return params, false, nil
}

// containerd17ParseStartResponse is containerd v1.7.35's reading (runtime/v2/shim.go
// parseStartResponse into shim.BootstrapParams{Version int, Address, Protocol}), after the
// same TrimSpace: JSON fields other than these three are ignored there, whereas 2.4 decodes
// the whole BootstrapResult and reads JSON with a field of another type as a plain address.
func containerd17ParseStartResponse(response []byte) (addr string, version int) {
	response = bytes.TrimSpace(response)
	var params struct {
		Version  int    `json:"version"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal(response, &params); err != nil || params.Version < 2 {
		return string(response), 2
	}
	return params.Address, params.Version
}

// FuzzParseAnswer: a shim's start answer (protobuf BootstrapResult, JSON, plain address).
// Properties: no panic; errors wrap ErrInvalidArgument or ErrNotImplemented; an accepted
// answer is ttrpc, version 2 or 3, with an address, and is what containerd 2.4 or 1.7 reads
// from the same bytes (but where containerd 2.4 takes a protobuf answer without an address,
// which it cannot connect to: the wrapper reads such bytes as JSON or a plain address); an
// accepted answer re-encoded as BootstrapResult or as JSON reads back the same; the wrapper's
// own answer with such an address (Encode) reads back as written by isoguard and by
// containerd 2.4 (version 3, JSON) and 1.7 (version 2, the plain address); Encode refuses
// exactly the version 2 addresses that some reader misreads as a plain answer:
//
//	go test ./shim/internal/bootstrap -run '^$' -fuzz '^FuzzParseAnswer$' -fuzztime 1000000x
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		"unix:///run/containerd/s/8f2d0c1e4b6a9d3f7e5c2b1a0d9e8f7c6b5a4d3e2f1c0b9a8d7e6f5c4b3a2d1e\n",
		`\\.\pipe\ProtectedPrefix\Administrators\containerd-shim-k8s.io-abc-pipe`,
		`{"version":3,"address":"unix:///run/containerd/s/x","protocol":"ttrpc"}`,
		`{"version":2,"address":"unix:///run/containerd/s/x","protocol":"grpc"}`,
		`{"version":1,"address":"x"}`,
		"failed to start: no such file",
		" \n",
	} {
		f.Add([]byte(s))
	}
	for _, r := range []*bootapi.BootstrapResult{
		{Version: 3, Address: "unix:///run/containerd/s/8f2d0c1e", Protocol: "ttrpc"},
		{Version: 2, Address: "unix:///run/containerd/s/8f2d0c1e"},
		{Version: 4, Address: "unix:///x", Protocol: "ttrpc"},
		{Version: 3, Protocol: "ttrpc"},
	} {
		f.Add(mustMarshal2(f, r))
	}

	f.Fuzz(func(t *testing.T, out []byte) {
		a, err := ParseAnswer(out)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) && !errdefs.IsNotImplemented(err) {
				t.Fatalf("error %v wraps neither ErrInvalidArgument nor ErrNotImplemented", err)
			}
			return
		}
		if a.Protocol != "ttrpc" || a.Version != 2 && a.Version != 3 || a.Address == "" {
			t.Fatalf("accepted %+v", a)
		}
		cd, fromProto, cdErr := containerdParseStartResponse(out)
		agree24 := cdErr == nil && cd.GetAddress() == a.Address && int(cd.GetVersion()) == a.Version
		addr17, version17 := containerd17ParseStartResponse(out)
		agree17 := !fromProto && addr17 == a.Address && version17 == a.Version
		if !agree24 && !agree17 && !(fromProto && cd.GetAddress() == "") {
			t.Fatalf("%q: isoguard reads %+v, containerd 2.4 %v (%v), 1.7 %q version %d", out, a, cd, cdErr, addr17, version17)
		}
		if !utf8.ValidString(a.Address) {
			return // a plain address: neither protobuf nor JSON can carry it
		}
		b := mustMarshal2(t, &bootapi.BootstrapResult{Version: int32(a.Version), Address: a.Address, Protocol: a.Protocol})
		if again, err := ParseAnswer(b); err != nil || again != a {
			t.Fatalf("%+v as BootstrapResult reads back as %+v (%v)", a, again, err)
		}
		{
			j, _ := json.Marshal(map[string]any{"version": a.Version, "address": a.Address, "protocol": a.Protocol})
			if again, err := ParseAnswer(j); err != nil || again != a {
				t.Fatalf("%+v as JSON reads back as %+v (%v)", a, again, err)
			}
		}
		// The wrapper's own answer with an address like this one (Encode): version 3 as
		// JSON for containerd 2.3+, which 2.4 reads back as written; version 2 as the plain
		// address, which 1.7 and 2.4 read back as written, or Encode refuses it.
		for _, v := range []int{2, 3} {
			own := Answer{Address: a.Address, Protocol: "ttrpc", Version: v}
			enc, err := own.Encode()
			if err != nil {
				plain := []byte(a.Address)
				cd, fromProto, cdErr := containerdParseStartResponse(plain)
				addr17, version17 := containerd17ParseStartResponse(plain)
				again, perr := ParseAnswer(plain)
				misread := fromProto || cdErr != nil || cd.GetAddress() != a.Address || cd.GetVersion() != 2 ||
					addr17 != a.Address || version17 != 2 || perr != nil || again != Answer{Address: a.Address, Protocol: "ttrpc", Version: 2}
				if v == 3 || !errdefs.IsInvalidArgument(err) || !misread {
					t.Fatalf("Encode of %+v: %v", own, err)
				}
				continue
			}
			if again, err := ParseAnswer(enc); err != nil || again != own {
				t.Fatalf("%+v encoded as %q reads back as %+v (%v)", own, enc, again, err)
			}
			cd, fromProto, err := containerdParseStartResponse(enc)
			if err != nil || fromProto || cd.GetAddress() != own.Address || int(cd.GetVersion()) != v || cd.GetProtocol() != "ttrpc" {
				t.Fatalf("%+v encoded as %q: containerd 2.4 reads %v (protobuf %v, %v)", own, enc, cd, fromProto, err)
			}
			if addr, version := containerd17ParseStartResponse(enc); v == 2 && (addr != own.Address || version != 2) {
				t.Fatalf("%+v encoded as %q: containerd 1.7 reads %q version %d", own, enc, addr, version)
			}
		}
	})
}
