package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/shim/hooks"
	"github.com/isoguard/isoguard/shim/internal/transport"
)

func testFlags() Flags {
	return Flags{Namespace: "k8s.io", Address: "/run/containerd/containerd.sock", PublishBinary: "/usr/bin/containerd", ID: "abc123"}
}

func specWith(t *testing.T, ann map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"ociVersion": "1.1.0", "annotations": ann})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stubHooks is a hooks.Hooks whose delegate and start outcome a test sets; it keeps the
// refusals it is told of.
type stubHooks struct {
	hooks.PassThrough
	delegate hooks.Delegate
	startErr error
	refused  *[]hooks.Refusal
}

func (h stubHooks) Refused(_ context.Context, r hooks.Refusal) {
	if h.refused != nil {
		*h.refused = append(*h.refused, r)
	}
}

func (h stubHooks) Delegate(context.Context) (hooks.Delegate, error) { return h.delegate, nil }
func (h stubHooks) Start(_ context.Context, _ *hooks.Instance, req *hooks.StartRequest) error {
	req.Delegate = h.delegate
	return h.startErr
}
func (h stubHooks) Describe() map[string]string {
	return map[string]string{"test.dev/described": "yes"}
}

func writeBundleSpec(t *testing.T, bundle string, ann map[string]string) {
	t.Helper()
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), specWith(t, ann), 0o600); err != nil {
		t.Fatal(err)
	}
}

func startArgv(id string) []string {
	return []string{"-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", id, "start"}
}

// podFixture makes a namespace directory with a recorded sandbox sb1 whose wrapper listens.
func podFixture(t *testing.T, sandbox bool, listening bool) (nsDir string, rec *bundle.Record) {
	t.Helper()
	nsDir = t.TempDir()
	sb := filepath.Join(nsDir, "sb1")
	writeBundleSpec(t, sb, map[string]string{cri.ContainerType: "sandbox", cri.SandboxID: "sb1"})
	rec = &bundle.Record{ID: "sb1", Namespace: "k8s.io", Sandbox: sandbox, Pid: 4242,
		Address:  "unix://" + filepath.Join(nsDir, "wrapper.sock"),
		Delegate: bundle.Delegate{Path: "/usr/bin/containerd-shim-runc-v2", Address: "unix://" + filepath.Join(nsDir, "delegate.sock"), Version: 3}}
	if listening {
		l, err := transport.Listen(rec.Address)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	if err := bundle.WriteRecord(sb, rec); err != nil {
		t.Fatal(err)
	}
	return nsDir, rec
}

func runStart(t *testing.T, bundle, id string) (code int, stdout, stderr string) {
	t.Helper()
	code, stdout, stderr, _ = runStartRefused(t, bundle, id)
	return code, stdout, stderr
}

// runStartRefused is runStart that also returns the refusals the hooks were told of.
func runStartRefused(t *testing.T, bundle, id string) (code int, stdout, stderr string, refused []hooks.Refusal) {
	t.Helper()
	t.Chdir(bundle)
	var out, errb bytes.Buffer
	code = Run(context.Background(), startArgv(id), bytes.NewReader(nil), &out, &errb, stubHooks{refused: &refused})
	return code, out.String(), errb.String(), refused
}

func TestStartWorkloadJoinsRecordedPod(t *testing.T) {
	nsDir, rec := podFixture(t, true, true)
	c1 := filepath.Join(nsDir, "c1")
	writeBundleSpec(t, c1, map[string]string{cri.ContainerType: "container", cri.SandboxID: "sb1"})
	code, out, errs := runStart(t, c1, "c1")
	if code != 0 {
		t.Fatalf("start failed: %s", errs)
	}
	// Exactly the wrapper's address: nothing else on stdout, never the delegate's.
	if out != rec.Address {
		t.Fatalf("start printed %q, want the pod wrapper's address %q", out, rec.Address)
	}
	if errs != "" {
		t.Fatalf("start wrote to stderr on success (containerd reads both): %q", errs)
	}
	addr, err := os.ReadFile(filepath.Join(c1, "address"))
	if err != nil || string(addr) != rec.Address {
		t.Fatalf("address file = %q, %v", addr, err)
	}
	var bj map[string]any
	data, _ := os.ReadFile(filepath.Join(c1, "bootstrap.json"))
	if err := json.Unmarshal(data, &bj); err != nil || bj["address"] != rec.Address || bj["version"] != float64(2) {
		t.Fatalf("bootstrap.json = %s (%v)", data, err)
	}
	// The pod's wrapper will not join it again at its Create.
	if !bundle.Joined(c1, "sb1") {
		t.Fatal("no join marker in the container's bundle")
	}
}

func TestStartWorkloadRefusals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sandbox   bool
		listening bool
		claims    string
		want      string
	}{
		{"pod isoguard did not start", true, true, "nopod", "which isoguard did not start"},
		{"record of a standalone container", false, true, "sb1", "not as a pod sandbox"},
		{"pod wrapper not running", true, false, "sb1", "is not running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nsDir, _ := podFixture(t, tc.sandbox, tc.listening)
			c := filepath.Join(nsDir, "c2")
			writeBundleSpec(t, c, map[string]string{cri.ContainerType: "container", cri.SandboxID: tc.claims})
			code, out, errs, refused := runStartRefused(t, c, "c2")
			if code == 0 || out != "" {
				t.Fatalf("start succeeded (%q); want refusal", out)
			}
			if !strings.Contains(errs, tc.want) {
				t.Fatalf("stderr %q does not say %q", errs, tc.want)
			}
			// The refusal is told to the hooks (the enforcer audits it).
			if len(refused) != 1 || refused[0].Call != "join" || refused[0].ID != "c2" || refused[0].SandboxID != tc.claims || !strings.Contains(refused[0].Cause.Error(), tc.want) {
				t.Fatalf("refusals told to the hooks: %+v", refused)
			}
		})
	}
}

func TestStartRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	writeBundleSpec(t, dir, map[string]string{cri.ContainerType: "container"})
	code, _, errs, refused := runStartRefused(t, dir, "x")
	if code == 0 || !strings.HasPrefix(errs, "containerd-shim-isoguard-v1: annotation") || !strings.Contains(errs, "without "+cri.SandboxID) {
		t.Fatalf("code %d stderr %q", code, errs)
	}
	if len(refused) != 1 || refused[0].Call != "start" || !errdefs.IsInvalidArgument(refused[0].Cause) {
		t.Fatalf("refusals told to the hooks: %+v", refused)
	}
	t.Chdir(dir)
	var out, errb bytes.Buffer
	code = Run(context.Background(), startArgv("x"), strings.NewReader("not protobuf at all"), &out, &errb, hooks.PassThrough{})
	if code == 0 || !strings.Contains(errb.String(), "neither BootstrapParams") {
		t.Fatalf("code %d stderr %q", code, errb.String())
	}
}

// serveWith runs the daemon for a fresh bundle with hooks h; it returns the daemon's
// readiness report, its flags and serve's error.
func serveWith(t *testing.T, h hooks.Hooks) ([]byte, Flags, error) {
	t.Helper()
	dir := t.TempDir()
	writeBundleSpec(t, dir, nil)
	t.Chdir(dir)
	f := testFlags()
	f.Socket = "unix://" + filepath.Join(t.TempDir(), "w.sock")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = serve(context.Background(), f, bytes.NewReader(nil), w, h)
	w.Close()
	report, _ := io.ReadAll(r)
	return report, f, err
}

// TestServeMissingDelegate: a delegate that does not exist fails start with a clear error,
// reported to `start` through the readiness pipe, and nothing is left listening.
func TestServeMissingDelegate(t *testing.T) {
	report, f, err := serveWith(t, stubHooks{delegate: hooks.Delegate{Path: "/nonexistent/containerd-shim-runhcs-v1"}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/containerd-shim-runhcs-v1") {
		t.Fatalf("serve: %v", err)
	}
	var rd readiness
	if json.Unmarshal(report, &rd) != nil || !strings.Contains(rd.Error, "/nonexistent") {
		t.Fatalf("readiness report %q", report)
	}
	if _, err := os.Stat(strings.TrimPrefix(f.Socket, "unix://")); err == nil {
		t.Fatal("a failed serve left its socket behind")
	}
}

// TestServeStartDenied: a start hook's denial starts no delegate; the daemon answers
// containerd's Create with the denial (a PermissionDenied status: containerd passes a
// Create's code on, not a start's), exits on Shutdown, and `delete` answers for the task.
func TestServeStartDenied(t *testing.T) {
	denial := fmt.Errorf("denied by rule untrusted.hostpath: mount /etc is not allowed (tenant %q): %w", "team-a", errdefs.ErrPermissionDenied)
	dir := t.TempDir()
	writeBundleSpec(t, dir, nil)
	t.Chdir(dir)
	f := testFlags()
	f.Socket = "unix://" + filepath.Join(t.TempDir(), "w.sock")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := stubHooks{delegate: hooks.Delegate{Path: "/nonexistent/shim"}, startErr: denial}
	served := make(chan error, 1)
	go func() { served <- serve(context.Background(), f, bytes.NewReader(nil), w, h) }()
	rd, _, err := awaitReadiness(r)
	if err != nil || rd.Error != "" || rd.Address != f.Socket {
		t.Fatalf("readiness %+v, %v: a denied start still answers containerd", rd, err)
	}
	rec, err := bundle.ReadRecord(dir)
	if err != nil || rec.Denied == "" || rec.Delegate.Path != "" {
		t.Fatalf("record %+v, %v: want the denial and no delegate", rec, err)
	}
	conn, err := transport.Dial(f.Socket, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	task := taskv2.NewTTRPCTaskClient(ttrpc.NewClient(conn))
	ctx := context.Background()
	_, err = task.Create(ctx, &taskv2.CreateTaskRequest{ID: f.ID, Bundle: dir})
	if err = errgrpc.ToNative(err); !errdefs.IsPermissionDenied(err) || !strings.HasPrefix(err.Error(), "isoguard: denied by rule untrusted.hostpath") {
		t.Fatalf("Create: %v, want the denial as permission denied", err)
	}
	if c, err := task.Connect(ctx, &taskv2.ConnectRequest{ID: f.ID}); err != nil || c.ShimPid != uint32(os.Getpid()) {
		t.Fatalf("Connect: %v %v", c, err)
	}
	if _, err := task.State(ctx, &taskv2.StateRequest{ID: f.ID}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Fatalf("State: %v, want not found", err)
	}
	// containerd takes a connection closed before Shutdown's answer as success
	// (core/runtime/v2/shim.go Shutdown: errors.Is(err, ttrpc.ErrClosed)).
	if _, err := task.Shutdown(ctx, &taskv2.ShutdownRequest{ID: f.ID}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the refusing daemon did not end on Shutdown")
	}
	if _, err := os.Stat(strings.TrimPrefix(f.Socket, "unix://")); err == nil {
		t.Fatal("socket left behind")
	}
	// containerd's delete of the bundle: nothing ran, so the answer comes from the wrapper.
	f.Bundle = dir
	var out, errb bytes.Buffer
	if err := deleteAction(ctx, f, &out, &errb, h); err != nil {
		t.Fatalf("delete: %v", err)
	}
	var dr taskv2.DeleteResponse
	if err := proto.Unmarshal(out.Bytes(), &dr); err != nil || dr.ExitStatus != deniedExitStatus || dr.ExitedAt == nil {
		t.Fatalf("delete answered %v (%v)", &dr, err)
	}
}

func TestInfoAndVersion(t *testing.T) {
	h := stubHooks{delegate: hooks.Delegate{Path: "/nonexistent/containerd-shim-runc-v2"}}
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"-info"}, bytes.NewReader(nil), &out, &errb, h); code != 0 {
		t.Fatalf("-info: %d %s", code, errb.String())
	}
	var ri apitypes.RuntimeInfo
	if err := proto.Unmarshal(out.Bytes(), &ri); err != nil {
		t.Fatalf("-info printed no RuntimeInfo: %v", err)
	}
	if ri.Name != RuntimeName || ri.GetVersion().GetVersion() == "" || ri.Annotations["test.dev/described"] != "yes" || !strings.Contains(ri.Annotations["isoguard.dev/delegate-error"], "/nonexistent") {
		t.Fatalf("RuntimeInfo %v", &ri)
	}
	out.Reset()
	if code := Run(context.Background(), []string{"-v"}, nil, &out, &errb, hooks.PassThrough{}); code != 0 || !strings.Contains(out.String(), "Version:") {
		t.Fatalf("-v: %d %q", code, out.String())
	}
	if code := Run(context.Background(), []string{"-namespace", "x", "bogus"}, nil, &out, &errb, hooks.PassThrough{}); code != 2 {
		t.Fatalf("unknown action: %d", code)
	}
}
