package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
)

// goLeaves lists the JSON name paths of every leaf field of t (fields_test walks
// runtime-spec's types with it; embedded structs without a JSON name are flattened, as
// encoding/json does).
func goLeaves(t reflect.Type, prefix string, out *[]string) {
	switch t.Kind() {
	case reflect.Pointer:
		goLeaves(t.Elem(), prefix, out)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "-" || !f.IsExported() {
				continue
			}
			if f.Anonymous && tag == "" {
				goLeaves(f.Type, prefix, out)
				continue
			}
			if tag == "" {
				tag = f.Name
			}
			goLeaves(f.Type, joinPath(prefix, tag), out)
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			*out = append(*out, prefix) // []byte is a value (base64 in JSON)
			return
		}
		goLeaves(t.Elem(), prefix+"[]", out)
	case reflect.Map:
		goLeaves(t.Elem(), prefix+"{}", out)
	case reflect.Interface:
		*out = append(*out, prefix) // any JSON value (windows.credentialSpec): classified whole
	case reflect.Func, reflect.Chan:
		panic(fmt.Sprintf("%s: %s fields cannot be classified", prefix, t.Kind()))
	default:
		*out = append(*out, prefix)
	}
}

// scopeLeaves are the leaves of the scopes this package can walk (the task API requests are
// walked in internal/enforce, which imports their package).
func scopeLeaves(t *testing.T, scope FieldScope, p Platform) []string {
	t.Helper()
	var out []string
	if rt := goScopeType(scope, p); rt != nil {
		goLeaves(rt, "", &out)
		return out
	}
	if scope == ScopeOptions {
		md := (&runcopts.Options{}).ProtoReflect().Descriptor()
		if p == Windows {
			md = (&runhcsopts.Options{}).ProtoReflect().Descriptor()
		}
		out = ProtoFieldPaths(md)
		return out
	}
	return nil
}

func TestEveryFieldClassified(t *testing.T) {
	for _, scope := range []FieldScope{ScopeSpec, ScopeProcess, ScopeResources, ScopeOptions} {
		t.Run(string(scope), func(t *testing.T) {
			for _, err := range CheckFieldsClassified(scope, map[Platform][]string{
				Windows: scopeLeaves(t, scope, Windows),
				Linux:   scopeLeaves(t, scope, Linux),
			}) {
				t.Error(err)
			}
		})
	}
}

func TestFieldTableValid(t *testing.T) {
	if err := validateFieldTable(fieldTable); err != nil {
		t.Fatal(err)
	}
	bad := []FieldInfo{
		{Scope: ScopeSpec, Path: "hostname", Class: FieldSafe, Rule: "untrusted.user", Why: "x"},
		{Scope: ScopeSpec, Path: "hostname", Class: FieldDenied, Rule: "untrusted.nope", Why: "x"},
		{Scope: ScopeSpec, Path: "hostname", Class: FieldSafe},
		{Scope: "nowhere", Path: "hostname", Class: FieldSafe, Why: "x"},
		{Scope: ScopeSpec, Path: "hostname", Class: "maybe", Why: "x"},
	}
	for _, f := range bad {
		if err := validateFieldTable([]FieldInfo{f}); err == nil {
			t.Errorf("entry %+v accepted", f)
		}
	}
	twice := []FieldInfo{
		{Scope: ScopeSpec, Path: "hostname", Class: FieldSafe, Why: "x"},
		{Scope: ScopeSpec, Path: "hostname", Platforms: []Platform{Linux}, Class: FieldSafe, Why: "y"},
	}
	if err := validateFieldTable(twice); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a field classified twice for linux: %v", err)
	}
}

func TestPathCovers(t *testing.T) {
	for _, c := range []struct {
		entry, path string
		want        bool
	}{
		{"linux", "linux.sysctl{}", true},
		{"linux.sysctl", "linux.sysctl{}", true},
		{"mounts", "mounts[].source", true},
		{"mounts[].source", "mounts[].source", true},
		{"process.user", "process.username", false},
		{"linux.resources.memory", "linux.resources.memoryx", false},
	} {
		if got := pathCovers(c.entry, c.path); got != c.want {
			t.Errorf("pathCovers(%q, %q) = %v", c.entry, c.path, got)
		}
	}
}

// TestDeniedFieldsDeny sets each denied field of the Go scopes, alone, in an otherwise
// admissible input, and checks that an untrusted tenant's call is denied naming the field,
// and that untrusted.allowedFields lifts exactly that denial.
func TestDeniedFieldsDeny(t *testing.T) {
	n := 0
	for k, list := range deniedFields {
		for _, d := range list {
			n++
			t.Run(fmt.Sprintf("%s/%s/%s", k.p, k.scope, d.Path), func(t *testing.T) {
				in := deniedFieldInput(t, k.p, k.scope)
				setField(t, deniedFieldRoot(&in, k.scope), d.steps)
				dec := evaluateWith(t, k.p, in, nil)
				sp := specPath(k.scope, k.p, d.Path)
				if dec.Allowed || !hasDenial(dec, d.Rule, sp) {
					t.Fatalf("%s %s set: want a denial by %s naming it, got allowed=%v denials=%+v", k.scope, d.Path, d.Rule, dec.Allowed, dec.Denials)
				}
				dec = evaluateWith(t, k.p, in, []string{sp})
				if hasDenial(dec, d.Rule, sp) {
					t.Fatalf("%s %s allowed by untrusted.allowedFields but still denied: %+v", k.scope, d.Path, dec.Denials)
				}
			})
		}
	}
	if n < 10 {
		t.Fatalf("only %d denied fields", n)
	}
}

func hasDenial(d Decision, rule, path string) bool {
	return slices.ContainsFunc(d.Denials, func(f Finding) bool { return f.Rule == rule && pathCovers(path, f.Field) })
}

// setField gives the field at steps a non-zero value (creating what is on the way: one
// list element, one map entry "x").
func setField(t *testing.T, v reflect.Value, steps []fieldStep) {
	t.Helper()
	for len(steps) > 0 {
		v = alloc(v)
		s := steps[0]
		steps = steps[1:]
		v = alloc(v.FieldByIndex(s.index))
		if !s.each {
			continue
		}
		switch v.Kind() {
		case reflect.Slice:
			v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
			v = v.Index(v.Len() - 1)
		case reflect.Map:
			if v.IsNil() {
				v.Set(reflect.MakeMap(v.Type()))
			}
			e := reflect.New(v.Type().Elem()).Elem()
			setLeaf(t, e, steps)
			v.SetMapIndex(reflect.ValueOf("x"), e)
			return
		}
	}
	setLeaf(t, v, nil)
}

func setLeaf(t *testing.T, v reflect.Value, steps []fieldStep) {
	t.Helper()
	if len(steps) > 0 {
		setField(t, v, steps)
		return
	}
	v = alloc(v)
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Interface:
		v.Set(reflect.ValueOf("x"))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
		setLeaf(t, v.Index(0), nil)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		e := reflect.New(v.Type().Elem()).Elem()
		setLeaf(t, e, nil)
		v.SetMapIndex(reflect.ValueOf("x"), e)
	case reflect.Struct:
		// the first settable field makes it non-zero
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				setLeaf(t, v.Field(i), nil)
				return
			}
		}
	default:
		t.Fatalf("cannot set a %s", v.Kind())
	}
}

// alloc follows pointers, allocating nil ones.
func alloc(v reflect.Value) reflect.Value {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	return v
}

// deniedFieldInput is an untrusted tenant's admissible call of the scope.
func deniedFieldInput(t *testing.T, p Platform, scope FieldScope) Input {
	switch {
	case scope == ScopeSpec && p == Windows:
		return winCreate(t)
	case scope == ScopeSpec:
		return linuxCreate(t)
	case scope == ScopeProcess && p == Windows:
		return winExec("ContainerUser")
	case scope == ScopeProcess:
		return linuxExec(1000)
	}
	t.Fatalf("no input for scope %s", scope)
	return Input{}
}

func deniedFieldRoot(in *Input, scope FieldScope) reflect.Value {
	if scope == ScopeProcess {
		return reflect.ValueOf(in.Process)
	}
	return reflect.ValueOf(in.Spec)
}

// evaluateWith evaluates in under the fixture policy of platform p, with allowedFields.
func evaluateWith(t *testing.T, p Platform, in Input, allowed []string) Decision {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "policies", string(p)+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	f.Untrusted.AllowedFields = allowed
	pol, err := Compile(f, p)
	if err != nil {
		t.Fatal(err)
	}
	return pol.Evaluate(in)
}
