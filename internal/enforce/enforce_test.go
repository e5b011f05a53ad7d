package enforce

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	rtopts "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/audit"
	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/policy"
	"github.com/isoguard/isoguard/shim/hooks"
)

// enforcerFixture: a node policy file (audit path set in the file), a standalone
// container's bundle and the wrapper instance that owns it. The policies name platform
// linux, so the tests run alike on every OS.
func enforcerFixture(t *testing.T, policyYAML string) (*Enforcer, *hooks.Instance, string) {
	t.Helper()
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit", "audit.log")
	cfg := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(cfg, []byte(policyYAML+"\naudit:\n  path: "+auditPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ConfigEnv, cfg)
	t.Setenv(AuditEnv, "")
	dir2 := filepath.Join(dir, "ns", "c1")
	spec := specs.Spec{Version: "1.1.0", Process: &specs.Process{Args: []string{"/bin/tool", "id"}, Cwd: "/", Env: []string{"SECRET_TOKEN=hunter2"}}, Root: &specs.Root{Path: "rootfs"}, Linux: &specs.Linux{}}
	data, _ := json.Marshal(spec)
	if err := os.MkdirAll(dir2, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	inst := &hooks.Instance{Namespace: "tenant-a", ID: "c1", Bundle: dir2, Delegate: hooks.Delegate{Path: "/usr/bin/containerd-shim-runc-v2"}}
	return New(), inst, auditPath
}

func auditRecords(t *testing.T, path string) []audit.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("audit file from the policy's audit.path: %v", err)
	}
	defer f.Close()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestEnforcerAppliesDecisions: start pins the pod and rewrites the options the delegate
// gets; Create rewrites config.json (user) and the request's options (sandbox runtime);
// each decision is audited to the file the policy names, without the environment value.
func TestEnforcerAppliesDecisions(t *testing.T) {
	e, inst, auditPath := enforcerFixture(t, "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nplatform: linux\nuntrusted:\n  sandbox:\n    shim: /usr/local/bin/containerd-shim-runsc-v1\n    configPath: /etc/isoguard/runsc.toml\n")
	ctx := context.Background()
	si := &hooks.StartRequest{}
	if err := e.Start(ctx, inst, si); err != nil {
		t.Fatal(err)
	}
	pins, err := Pins(inst.Pins)
	if err != nil || pins == nil || pins.Tenant != "containerd:tenant-a" || pins.Trusted {
		t.Fatalf("pins %s (%v)", inst.Pins, err)
	}
	var ro rtopts.Options
	if si.Options == nil || si.Options.UnmarshalTo(&ro) != nil || ro.ConfigPath != "/etc/isoguard/runsc.toml" {
		t.Fatalf("start options for the delegate: %v", si.Options)
	}
	if si.Delegate.Path != "/usr/local/bin/containerd-shim-runsc-v1" {
		t.Fatalf("start's delegate %+v: an untrusted pod runs in the sandbox shim", si.Delegate)
	}
	spec, err := bundle.ReadSpec(inst.Bundle)
	if err != nil || spec.Spec.Process.User.UID != policy.DefaultLinuxUID {
		t.Fatalf("config.json after start: %v (%v)", spec, err)
	}
	req := &hooks.CreateRequest{ID: "c1", Bundle: inst.Bundle}
	if err := e.Create(ctx, inst, req); err != nil {
		t.Fatal(err)
	}
	ro = rtopts.Options{}
	if req.Options == nil || req.Options.UnmarshalTo(&ro) != nil || ro.ConfigPath != "/etc/isoguard/runsc.toml" {
		t.Fatalf("Create options: %v", req.Options)
	}
	recs := auditRecords(t, auditPath)
	if len(recs) != 2 || recs[0].Call != "start" || recs[1].Call != "create" || recs[0].Outcome != audit.OutcomeMutated {
		t.Fatalf("audit records %+v", recs)
	}
	raw, _ := os.ReadFile(auditPath)
	if strings.Contains(string(raw), "hunter2") {
		t.Fatal("audit holds an environment value")
	}
	// Exec as root is rewritten.
	proc, _ := json.Marshal(specs.Process{Args: []string{"sh"}, Cwd: "/", User: specs.User{UID: 0}})
	ereq := &hooks.ExecRequest{ID: "c1", ExecID: "e1", Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: proc}}
	if err := e.Exec(ctx, inst, ereq); err != nil {
		t.Fatal(err)
	}
	var got specs.Process
	if err := json.Unmarshal(ereq.Spec.Value, &got); err != nil || got.User.UID != policy.DefaultLinuxUID || !strings.HasSuffix(ereq.Spec.TypeUrl, "/Process") {
		t.Fatalf("exec process after the policy: %+v (%v)", got.User, err)
	}
	// An exec spec that is not a process is denied (fail closed).
	bad := &hooks.ExecRequest{ID: "c1", ExecID: "e2", Spec: &anypb.Any{TypeUrl: "x", Value: []byte("{not json")}}
	if err := e.Exec(ctx, inst, bad); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("malformed exec spec: %v", err)
	}
	// The refusal is audited with its cause.
	recs = auditRecords(t, auditPath)
	if last := recs[len(recs)-1]; last.Call != "exec" || last.Outcome != audit.OutcomeDenied || !strings.Contains(last.Error, "not a JSON OCI process") {
		t.Fatalf("refused exec audited as %+v", last)
	}
}

// TestRewritesLoseNothing: config.json and an Exec's process carry fields this runtime-spec
// version does not know (a newer containerd's); the policy's rewrites keep them, at every
// depth.
func TestRewritesLoseNothing(t *testing.T) {
	e, inst, _ := enforcerFixture(t, "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nplatform: linux\nuntrusted:\n  sandbox:\n    shim: /usr/local/bin/containerd-shim-runsc-v1\n")
	cfg := filepath.Join(inst.Bundle, "config.json")
	const newer = `{"ociVersion":"1.9.0","x-top":{"n":1.50},"process":{"user":{"uid":0,"gid":0,"x-user":"u"},"args":["sh"],"cwd":"/","x-proc":[1,{"a":"b"}]},"root":{"path":"rootfs","x-root":true},"annotations":{"dev.gvisor.flag.network":"host","keep":"v"},"linux":{"x-linux":{"deep":{"er":1}}}}`
	if err := os.WriteFile(cfg, []byte(newer), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Start(ctx, inst, &hooks.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(cfg)
	for _, want := range []string{`"ociVersion":"1.9.0"`, `"x-top":{"n":1.50}`, `"x-user":"u"`, `"x-proc":[1,{"a":"b"}]`, `"x-root":true`, `"x-linux":{"deep":{"er":1}}`, `"keep":"v"`, `"uid":65534`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("config.json after the rewrite lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "dev.gvisor.flag.network") {
		t.Errorf("the stripped annotation survived: %s", got)
	}
	exec := &hooks.ExecRequest{ID: "c1", ExecID: "e1", Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process",
		Value: []byte(`{"user":{"uid":0,"gid":0,"x-user":"e"},"args":["id"],"cwd":"/","x-exec":{"k":[true]}}`)}}
	if err := e.Exec(ctx, inst, exec); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"x-user":"e"`, `"x-exec":{"k":[true]}`, `"uid":65534`} {
		if !strings.Contains(string(exec.Spec.Value), want) {
			t.Errorf("exec process after the rewrite lacks %s: %s", want, exec.Spec.Value)
		}
	}
}

// TestRefusalsAreAudited: a refusal the wrapper made before any decision (a pod it did not
// start, an unreadable config.json) leaves a denied record with its cause; so does a
// config.json the enforcer cannot read.
func TestRefusalsAreAudited(t *testing.T) {
	e, inst, auditPath := enforcerFixture(t, "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nplatform: linux\n")
	ctx := context.Background()
	e.Refused(ctx, hooks.Refusal{Call: "join", Namespace: "k8s.io", ID: "c2", SandboxID: "nopod", Cause: errors.New("container c2 names pod sandbox nopod, which isoguard did not start")})
	if err := os.WriteFile(filepath.Join(inst.Bundle, "config.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Create(ctx, inst, &hooks.CreateRequest{ID: "c1", Bundle: inst.Bundle}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("create with an invalid config.json: %v", err)
	}
	recs := auditRecords(t, auditPath)
	if len(recs) != 2 {
		t.Fatalf("audit records %+v, want one per refusal", recs)
	}
	if r := recs[0]; r.Call != "join" || r.ID != "c2" || r.SandboxID != "nopod" || r.Outcome != audit.OutcomeDenied || !strings.Contains(r.Error, "did not start") {
		t.Errorf("join refusal audited as %+v", r)
	}
	if r := recs[1]; r.Call != "create" || r.ID != "c1" || r.Outcome != audit.OutcomeDenied || !strings.Contains(r.Error, "config.json") {
		t.Errorf("invalid config.json audited as %+v", r)
	}
}

// TestEnforcerFailsClosed: an invalid policy file denies with the file and the problem, and
// the denial is audited.
func TestEnforcerFailsClosed(t *testing.T) {
	e, inst, _ := enforcerFixture(t, "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nplatform: linux\n")
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	t.Setenv(AuditEnv, auditPath)
	cfg := os.Getenv(ConfigEnv)
	if err := os.WriteFile(cfg, []byte("apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nplatform: linux\ntenants: {oops: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := e.Start(context.Background(), inst, &hooks.StartRequest{})
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), cfg) || !strings.Contains(err.Error(), "tenants") {
		t.Fatalf("start with an invalid policy: %v", err)
	}
	recs := auditRecords(t, auditPath)
	if len(recs) != 1 || recs[0].Outcome != audit.OutcomeDenied || !strings.Contains(recs[0].Error, "tenants") {
		t.Fatalf("audit %+v", recs)
	}
	// The policy is re-read when it changes: a valid file is picked up by the next call.
	if err := os.WriteFile(cfg, []byte("apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nplatform: linux\ntenants:\n  - containerdNamespace: tenant-a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background(), inst, &hooks.StartRequest{}); err != nil {
		t.Fatalf("after fixing the policy: %v", err)
	}
	if pins, err := Pins(inst.Pins); err != nil || !pins.Trusted {
		t.Fatalf("the fixed policy trusts tenant-a: %s %v", inst.Pins, err)
	}
}

// TestMissingPolicyIsPermissionDenied: without a policy file every call is denied, naming
// the file, and what reaches containerd is PermissionDenied, not the NotFound of the
// missing file (the ttrpc edge converts the first errdefs class it finds).
func TestMissingPolicyIsPermissionDenied(t *testing.T) {
	e, inst, _ := enforcerFixture(t, "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nplatform: linux\n")
	cfg := os.Getenv(ConfigEnv)
	if err := os.Remove(cfg); err != nil {
		t.Fatal(err)
	}
	err := e.Start(context.Background(), inst, &hooks.StartRequest{})
	if !errdefs.IsPermissionDenied(err) || errdefs.IsNotFound(err) || !strings.Contains(err.Error(), cfg) {
		t.Fatalf("start without a policy file: %v, want only a denial naming %s", err, cfg)
	}
	if code := status.Code(errgrpc.ToGRPC(err)); code != codes.PermissionDenied {
		t.Fatalf("start without a policy file reaches containerd as %v, want PermissionDenied", code)
	}
}

// TestPolicyFollowsContent: a policy file replaced by one of the same size and
// modification time is still read anew (the cache keys on the content).
func TestPolicyFollowsContent(t *testing.T) {
	const trusted, untrusted = "tenant-a", "tenant-b"
	body := func(tenant string) []byte {
		return []byte("apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nplatform: linux\nuntrusted:\n  sandbox:\n    shim: /usr/local/bin/containerd-shim-runsc-v1\ntenants:\n  - containerdNamespace: " + tenant + "\n")
	}
	e, inst, _ := enforcerFixture(t, "")
	t.Setenv(AuditEnv, filepath.Join(t.TempDir(), "audit.log"))
	cfg := os.Getenv(ConfigEnv)
	if err := os.WriteFile(cfg, body(trusted), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(cfg)
	startPins := func() *policy.Pins {
		t.Helper()
		if err := e.Start(context.Background(), inst, &hooks.StartRequest{}); err != nil {
			t.Fatal(err)
		}
		p, err := Pins(inst.Pins)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if !startPins().Trusted {
		t.Fatal("tenant-a is trusted by the first policy")
	}
	if err := os.WriteFile(cfg, body(untrusted), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(cfg, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(cfg); fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatal("the test needs a file of the same size and time")
	}
	if startPins().Trusted {
		t.Fatal("the replaced policy (same size, same mtime) was not read: tenant-a is still trusted")
	}
}

// TestPlatform: the profile is the policy file's platform, else the OS the wrapper runs
// on, whatever the delegate is called.
func TestPlatform(t *testing.T) {
	if got := Platform(&policy.File{Platform: policy.Windows}); got != policy.Windows {
		t.Errorf("platform windows: %q", got)
	}
	if got := Platform(&policy.File{}); got != policy.Platform(runtime.GOOS) {
		t.Errorf("no platform: %q, want %q", got, runtime.GOOS)
	}
}

// TestEnforcerUpdateLimits: an Update that raises resources past the policy's limits is
// denied with the rule id; one within them is allowed (threats T14).
func TestEnforcerUpdateLimits(t *testing.T) {
	e, inst, _ := enforcerFixture(t, "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nplatform: linux\nuntrusted:\n  sandbox:\n    shim: /usr/local/bin/containerd-shim-runsc-v1\n    configPath: /etc/isoguard/runsc.toml\n  limits:\n    memoryMB: 512\n")
	ctx := context.Background()
	if err := e.Start(ctx, inst, &hooks.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	update := func(limitMB int64) error {
		limit := limitMB << 20
		raw, _ := json.Marshal(specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})
		return e.Update(ctx, inst, &hooks.UpdateRequest{ID: "c1", Resources: &anypb.Any{TypeUrl: policy.TypeURLLinuxResources, Value: raw}})
	}
	if err := update(256); err != nil {
		t.Fatalf("update within the limit: %v", err)
	}
	err := update(4096)
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "untrusted.update-limits") {
		t.Fatalf("update past the limit: %v", err)
	}
}
