package policy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/shim/hooks"
)

// Golden fixtures, in the manner of pod-security-admission's test/fixtures: every case of
// fixtureCases (fixture_cases_test.go) is written to testdata/<rule>/<pass|fail>/<name>.json
// with its complete Input and the expected decision. The test evaluates each case, and
// each file's own input (so the files stand on their own), and compares with the file.
//
//	go test ./policy -run TestFixtures -update   # regenerate after a deliberate change
//
// pass/: the rule found nothing and changed nothing. fail/: the rule denied or rewrote
// something. TestFailFixturesNeedTheirRule proves that every fail fixture depends on its
// rule: without the rule, the decision differs.

var update = flag.Bool("update", false, "rewrite the golden fixtures in testdata")

// fixtureFile is the JSON form of one fixture.
type fixtureFile struct {
	Description string       `json:"description"`
	Threats     []string     `json:"threats,omitempty"`
	Policy      string       `json:"policy"` // testdata/policies/<policy>.yaml
	Input       fixtureInput `json:"input"`
	Want        fixtureWant  `json:"want"`
}

type fixtureInput struct {
	Call              Call              `json:"call"`
	Platform          Platform          `json:"platform,omitempty"`
	Namespace         string            `json:"namespace"`
	ID                string            `json:"id"`
	ExecID            string            `json:"execID,omitempty"`
	Role              Role              `json:"role,omitempty"`
	SandboxID         string            `json:"sandboxID,omitempty"`
	Spec              *specs.Spec       `json:"spec,omitempty"`
	Options           *fixtureAny       `json:"options,omitempty"`
	Process           *specs.Process    `json:"process,omitempty"`
	Resources         *fixtureAny       `json:"resources,omitempty"`
	UpdateAnnotations map[string]string `json:"updateAnnotations,omitempty"`
	Rootfs            []hooks.Mount     `json:"rootfs,omitempty"`
	Stdio             *hooks.Stdio      `json:"stdio,omitempty"`
	Checkpoint        string            `json:"checkpoint,omitempty"`
	ParentCheckpoint  string            `json:"parentCheckpoint,omitempty"`
	Pod               *Pins             `json:"pod,omitempty"`
}

// fixtureAny is an Any in readable form: JSON (protojson for a registered protobuf type,
// the value itself for JSON-encoded types such as runtime-spec resources), or base64 for
// bytes that are neither.
type fixtureAny struct {
	TypeURL string          `json:"typeUrl"`
	JSON    json.RawMessage `json:"json,omitempty"`
	Base64  string          `json:"base64,omitempty"`
}

type fixtureWant struct {
	Allowed   bool            `json:"allowed"`
	Trusted   bool            `json:"trusted"`
	Tenant    string          `json:"tenant"`
	Mode      Mode            `json:"mode"`
	Error     string          `json:"error,omitempty"`
	Denials   []Finding       `json:"denials,omitempty"`
	Mutations []Mutation      `json:"mutations,omitempty"`
	Pins      *Pins           `json:"pins,omitempty"`
	Results   *fixtureResults `json:"results,omitempty"`
}

// fixtureResults is what the shim applies: the options, and the spec/process parts the
// rules change.
type fixtureResults struct {
	Options         *fixtureAny       `json:"options,omitempty"`
	SpecAnnotations map[string]string `json:"specAnnotations,omitempty"`
	SpecUser        *specs.User       `json:"specUser,omitempty"`
	SpecHyperV      *bool             `json:"specHyperV,omitempty"`
	ProcessUser     *specs.User       `json:"processUser,omitempty"`
	Delegate        *hooks.Delegate   `json:"delegate,omitempty"`
}

func protoMessageType(url string) (protoreflect.MessageType, bool) {
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
	return mt, err == nil
}

func toFixtureAny(a *anypb.Any) *fixtureAny {
	if a == nil {
		return nil
	}
	fa := &fixtureAny{TypeURL: a.GetTypeUrl()}
	if mt, ok := protoMessageType(a.GetTypeUrl()); ok {
		m := mt.New().Interface()
		if proto.Unmarshal(a.GetValue(), m) == nil && len(m.ProtoReflect().GetUnknown()) == 0 {
			if b, err := protojson.Marshal(m); err == nil {
				fa.JSON = stableJSON(b)
				return fa
			}
		}
	} else if json.Valid(a.GetValue()) && len(a.GetValue()) > 0 {
		fa.JSON = stableJSON(a.GetValue())
		return fa
	}
	fa.Base64 = base64.StdEncoding.EncodeToString(a.GetValue())
	return fa
}

func (fa *fixtureAny) toAny() (*anypb.Any, error) {
	if fa == nil {
		return nil, nil
	}
	a := &anypb.Any{TypeUrl: fa.TypeURL}
	switch {
	case fa.Base64 != "":
		b, err := base64.StdEncoding.DecodeString(fa.Base64)
		if err != nil {
			return nil, err
		}
		a.Value = b
	case len(fa.JSON) > 0:
		if mt, ok := protoMessageType(fa.TypeURL); ok {
			m := mt.New().Interface()
			if err := protojson.Unmarshal(fa.JSON, m); err != nil {
				return nil, err
			}
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if err != nil {
				return nil, err
			}
			a.Value = b
		} else {
			var buf bytes.Buffer
			if err := json.Compact(&buf, fa.JSON); err != nil {
				return nil, err
			}
			a.Value = buf.Bytes()
		}
	}
	return a, nil
}

// stableJSON re-encodes JSON with encoding/json (protojson's output is deliberately
// unstable in whitespace).
func stableJSON(b []byte) json.RawMessage {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return b
	}
	out, _ := json.Marshal(v)
	return out
}

func toFixtureInput(in Input) fixtureInput {
	fi := fixtureInput{
		Call: in.Call, Platform: in.Platform, Namespace: in.Namespace, ID: in.ID, ExecID: in.ExecID,
		Role: in.Role, SandboxID: in.SandboxID, Spec: in.Spec, Options: toFixtureAny(in.Options),
		Process: in.Process, Resources: toFixtureAny(in.Resources), UpdateAnnotations: in.UpdateAnnotations,
		Rootfs: in.Rootfs, Checkpoint: in.Checkpoint, ParentCheckpoint: in.ParentCheckpoint, Pod: in.Pod,
	}
	if in.Stdio != (hooks.Stdio{}) {
		st := in.Stdio
		fi.Stdio = &st
	}
	return fi
}

func (fi fixtureInput) toInput() (Input, error) {
	in := Input{
		Call: fi.Call, Platform: fi.Platform, Namespace: fi.Namespace, ID: fi.ID, ExecID: fi.ExecID,
		Role: fi.Role, SandboxID: fi.SandboxID, Spec: fi.Spec, Process: fi.Process,
		UpdateAnnotations: fi.UpdateAnnotations, Pod: fi.Pod,
		Rootfs: fi.Rootfs, Checkpoint: fi.Checkpoint, ParentCheckpoint: fi.ParentCheckpoint,
	}
	if fi.Stdio != nil {
		in.Stdio = *fi.Stdio
	}
	var err error
	if in.Options, err = fi.Options.toAny(); err != nil {
		return in, fmt.Errorf("options: %w", err)
	}
	if in.Resources, err = fi.Resources.toAny(); err != nil {
		return in, fmt.Errorf("resources: %w", err)
	}
	return in, nil
}

func toFixtureWant(d Decision) fixtureWant {
	w := fixtureWant{
		Allowed: d.Allowed, Trusted: d.Trusted, Tenant: d.Tenant, Mode: d.Mode,
		Denials: d.Denials, Mutations: d.Mutations, Pins: d.Pins,
	}
	if err := d.Error(); err != nil {
		w.Error = err.Error()
	}
	if d.Changed() {
		r := &fixtureResults{Options: toFixtureAny(d.Options), Delegate: d.Delegate}
		if d.Spec != nil {
			r.SpecAnnotations = d.Spec.Annotations
			if d.Spec.Process != nil {
				u := d.Spec.Process.User
				r.SpecUser = &u
			}
			hv := d.Spec.Windows != nil && d.Spec.Windows.HyperV != nil
			r.SpecHyperV = &hv
		}
		if d.Process != nil {
			u := d.Process.User
			r.ProcessUser = &u
		}
		w.Results = r
	}
	return w
}

func marshalFixture(f fixtureFile) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// policyCache compiles each fixture policy once per test binary (tests only).
type policyCache map[string]*Policy

func (c policyCache) get(t testing.TB, name string) *Policy {
	t.Helper()
	if p, ok := c[name]; ok {
		return p
	}
	data, err := os.ReadFile(filepath.Join("testdata", "policies", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
	p, err := Compile(f, f.Platform)
	if err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
	c[name] = p
	return p
}

func (fc fixtureCase) path() string {
	if fc.dir == "decision" {
		return filepath.Join("testdata", fc.dir, fc.name+".json")
	}
	kind := "fail"
	if fc.pass {
		kind = "pass"
	}
	return filepath.Join("testdata", fc.dir, kind, fc.name+".json")
}

func (fc fixtureCase) build(t testing.TB, policies policyCache) (fixtureFile, Input) {
	in := fc.input(t)
	p := policies.get(t, fc.policy)
	before := marshalFixture(fixtureFile{Input: toFixtureInput(in)})
	d := p.Evaluate(in)
	if after := marshalFixture(fixtureFile{Input: toFixtureInput(in)}); !bytes.Equal(before, after) {
		t.Errorf("Evaluate modified its input:\n%s", lineDiff(string(before), string(after)))
	}
	return fixtureFile{
		Description: fc.desc,
		Threats:     fc.threats,
		Policy:      fc.policy,
		Input:       toFixtureInput(in),
		Want:        toFixtureWant(d),
	}, in
}

func TestFixtures(t *testing.T) {
	policies := policyCache{}
	seen := map[string]bool{}
	for _, fc := range fixtureCases() {
		path := fc.path()
		t.Run(strings.TrimPrefix(path, "testdata/"), func(t *testing.T) {
			if seen[path] {
				t.Fatalf("two cases write %s", path)
			}
			seen[path] = true
			f, _ := fc.build(t, policies)
			got := marshalFixture(f)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decision differs from %s (run with -update after a deliberate change):\n%s", path, lineDiff(string(want), string(got)))
			}
			checkFixtureKind(t, fc, f)
			checkNoSecrets(t, got)

			// The file stands on its own: its input gives its want.
			var ff fixtureFile
			if err := json.Unmarshal(want, &ff); err != nil {
				t.Fatal(err)
			}
			in, err := ff.Input.toInput()
			if err != nil {
				t.Fatal(err)
			}
			again := marshalFixture(fixtureFile{ff.Description, ff.Threats, ff.Policy, ff.Input, toFixtureWant(policies.get(t, ff.Policy).Evaluate(in))})
			if !bytes.Equal(again, want) {
				t.Errorf("%s: evaluating the file's own input gives a different decision:\n%s", path, lineDiff(string(want), string(again)))
			}
		})
	}
	t.Run("no stray files", func(t *testing.T) {
		err := filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
				return err
			}
			if !seen[path] {
				t.Errorf("%s has no case in fixtureCases (delete it, or add the case)", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// checkFixtureKind: a pass fixture has nothing from its rule, a fail fixture something.
func checkFixtureKind(t *testing.T, fc fixtureCase, f fixtureFile) {
	t.Helper()
	if fc.dir == "decision" {
		return
	}
	n := 0
	for _, d := range f.Want.Denials {
		if d.Rule == fc.dir {
			n++
		}
	}
	for _, m := range f.Want.Mutations {
		if m.Rule == fc.dir {
			n++
		}
	}
	if fc.pass && n > 0 {
		t.Errorf("pass fixture: rule %s found %d things", fc.dir, n)
	}
	if !fc.pass && n == 0 {
		t.Errorf("fail fixture: rule %s found nothing", fc.dir)
	}
	if fc.pass && fc.threats != nil {
		t.Errorf("pass fixture names threats %v; threats belong to fail fixtures", fc.threats)
	}
	if !fc.pass && fc.dir != RuleInvalidInput && ruleByID(fc.dir) == nil {
		t.Errorf("directory %s is not a rule ID", fc.dir)
	}
}

// checkNoSecrets: the fixtures' inputs carry a secret env value and secret-looking
// annotation values; no decision may repeat them (threats T15).
func checkNoSecrets(t *testing.T, fixture []byte) {
	t.Helper()
	var f fixtureFile
	if err := json.Unmarshal(fixture, &f); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(struct {
		Denials   []Finding
		Mutations []Mutation
		Error     string
	}{f.Want.Denials, f.Want.Mutations, f.Want.Error})
	for _, secret := range []string{"hunter2", secretAnnotationValue} {
		if bytes.Contains(want, []byte(secret)) {
			t.Errorf("the decision's findings or mutations contain the secret %q", secret)
		}
	}
}

// TestFailFixturesNeedTheirRule removes each rule from the policy in turn and checks that
// every fail fixture of that rule then gets a different decision: the fixture fails
// without the check (docs/threat-model.md: a test that FAILS when its check is removed).
func TestFailFixturesNeedTheirRule(t *testing.T) {
	policies := policyCache{}
	byRule := map[string][]fixtureCase{}
	for _, fc := range fixtureCases() {
		if !fc.pass && ruleByID(fc.dir) != nil {
			byRule[fc.dir] = append(byRule[fc.dir], fc)
		}
	}
	for _, r := range registry {
		t.Run(r.id, func(t *testing.T) {
			if len(byRule[r.id]) == 0 {
				t.Fatalf("rule %s has no fail fixture", r.id)
			}
			without := slices.DeleteFunc(slices.Clone(registry), func(x *rule) bool { return x == r })
			reduced := policyCache{}
			for _, fc := range byRule[r.id] {
				f, in := fc.build(t, policies)
				if _, ok := reduced[fc.policy]; !ok {
					data, err := os.ReadFile(filepath.Join("testdata", "policies", fc.policy+".yaml"))
					if err != nil {
						t.Fatal(err)
					}
					file, err := Parse(data)
					if err != nil {
						t.Fatal(err)
					}
					if reduced[fc.policy], err = compile(file, file.Platform, without); err != nil {
						t.Fatal(err)
					}
				}
				got := toFixtureWant(reduced[fc.policy].Evaluate(in))
				if reflect.DeepEqual(got, f.Want) {
					t.Errorf("%s: the decision is the same without rule %s", fc.path(), r.id)
				}
			}
		})
	}
}

// TestThreatCoverage: every threat row that needs a check (docs/threat-model.md T3-T11, T13, T14)
// has at least one fail fixture that denies or rewrites.
func TestThreatCoverage(t *testing.T) {
	covered := map[string]int{}
	for _, fc := range fixtureCases() {
		if fc.pass {
			continue
		}
		for _, th := range fc.threats {
			covered[th]++
		}
	}
	for _, th := range []string{"T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T13", "T14"} {
		if covered[th] == 0 {
			t.Errorf("threat %s has no fail fixture", th)
		} else {
			t.Logf("%s: %d fail fixtures", th, covered[th])
		}
	}
}

// lineDiff shows the lines that differ (a minimal diff for test output).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
			if b.Len() > 4000 {
				b.WriteString("...\n")
				break
			}
		}
	}
	return b.String()
}
