package policy

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Every field a workload's calls carry is classified here, for each platform: inspected by
// a named rule, safe for untrusted tenants (and why), or denied (set, it denies the call
// unless the policy allows it by name). Tests walk the Go types of runtime-spec (Spec,
// Process, LinuxResources, WindowsResources), the runtime options' protobuf messages and
// the task API's requests, and fail on any field without an entry here (fields_test.go,
// internal/enforce's request walk); the table is docs/policy.md's "Fields" section
// (`isoguard policy fields --markdown`).

// FieldScope is the message a field belongs to.
type FieldScope string

const (
	// ScopeSpec is the bundle's config.json (runtime-spec Spec): start, join, create.
	ScopeSpec FieldScope = "config.json"
	// ScopeProcess is an Exec's process (ExecProcessRequest.Spec, a runtime-spec Process).
	ScopeProcess FieldScope = "exec process"
	// ScopeResources is an Update's resources (UpdateTaskRequest.Resources: runtime-spec
	// LinuxResources or WindowsResources).
	ScopeResources FieldScope = "update resources"
	// ScopeOptions are the runtime options (start's stdin, CreateTaskRequest.Options): runhcs
	// Options (Windows), runc Options (Linux).
	ScopeOptions FieldScope = "runtime options"
	// ScopeCreate, ScopeExec and ScopeUpdate are the task API requests.
	ScopeCreate FieldScope = "CreateTaskRequest"
	ScopeExec   FieldScope = "ExecProcessRequest"
	ScopeUpdate FieldScope = "UpdateTaskRequest"
)

// FieldScopes lists the scopes in documentation order.
func FieldScopes() []FieldScope {
	return []FieldScope{ScopeCreate, ScopeSpec, ScopeOptions, ScopeExec, ScopeProcess, ScopeUpdate, ScopeResources}
}

// FieldClass is how a field is treated for untrusted tenants.
type FieldClass string

const (
	// FieldInspected: a rule (FieldInfo.Rule) checks the field and may rewrite it or deny.
	FieldInspected FieldClass = "inspected"
	// FieldSafe: passes unchanged; FieldInfo.Why says why it cannot reach the host.
	FieldSafe FieldClass = "safe"
	// FieldDenied: set (non-zero, non-empty), it denies the call (rule FieldInfo.Rule)
	// unless untrusted.allowedFields names it.
	FieldDenied FieldClass = "denied"
)

// FieldInfo classifies a field and every field below it (a more specific entry wins).
type FieldInfo struct {
	Scope FieldScope
	// Path is the field's JSON name path (protobuf: the proto field names): "." between
	// levels, "[]" after a list, "{}" after a map: "mounts[].source", "linux.sysctl{}".
	Path      string
	Platforms []Platform // nil: both
	Class     FieldClass
	Rule      string // inspected, denied: the rule's ID
	Why       string // what the delegate does with the field, and why the class
}

// Fields returns the classification table, in documentation order.
func Fields() []FieldInfo {
	out := make([]FieldInfo, len(fieldTable))
	for i, f := range fieldTable {
		out[i] = f
		out[i].Platforms = slices.Clone(f.Platforms)
	}
	return out
}

// ClassifyField returns the entry that classifies path of scope on platform: the most
// specific entry at or above it. ok is false for an unclassified field.
func ClassifyField(p Platform, scope FieldScope, path string) (FieldInfo, bool) {
	best := -1
	for i, f := range fieldTable {
		if f.Scope != scope || !f.appliesTo(p) || !pathCovers(f.Path, path) {
			continue
		}
		if best < 0 || len(f.Path) > len(fieldTable[best].Path) {
			best = i
		}
	}
	if best < 0 {
		return FieldInfo{}, false
	}
	return fieldTable[best], true
}

func (f FieldInfo) appliesTo(p Platform) bool {
	return f.Platforms == nil || slices.Contains(f.Platforms, p)
}

// pathCovers reports whether entry is path or one of its ancestors.
func pathCovers(entry, path string) bool {
	if entry == "*" {
		return true
	}
	if !strings.HasPrefix(path, entry) {
		return false
	}
	rest := path[len(entry):]
	return rest == "" || rest[0] == '.' || strings.HasPrefix(rest, "[]") || strings.HasPrefix(rest, "{}")
}

// deniedField is a denied entry with its compiled accessor (Go scopes only).
type deniedField struct {
	FieldInfo
	steps []fieldStep
}

// fieldStep is one level of a Go path: a struct field by index, then (optionally) every
// element of a list or map.
type fieldStep struct {
	index []int
	each  bool
}

// deniedFields are the denied entries of the Go scopes, compiled once per platform by init.
var deniedFields map[scopeKey][]deniedField

// init validates the field table (a malformed entry cannot ship: every test binary fails
// to start) and compiles its denied entries.
func init() {
	if err := validateFieldTable(fieldTable); err != nil {
		panic("policy: invalid field table: " + err.Error())
	}
	deniedFields = mustDeniedFields()
}

type scopeKey struct {
	scope FieldScope
	p     Platform
}

func mustDeniedFields() map[scopeKey][]deniedField {
	out := map[scopeKey][]deniedField{}
	for _, f := range fieldTable {
		for _, p := range []Platform{Windows, Linux} {
			root := goScopeType(f.Scope, p)
			if f.Class != FieldDenied || !f.appliesTo(p) || root == nil {
				continue // protobuf scopes: their rules check them by name
			}
			steps, err := compileFieldPath(root, f.Path)
			if err != nil {
				panic(fmt.Sprintf("policy: field table: %s %s: %v", f.Scope, f.Path, err))
			}
			k := scopeKey{f.Scope, p}
			out[k] = append(out[k], deniedField{f, steps})
		}
	}
	return out
}

// goScopeType is the runtime-spec type of a scope whose fields are Go types (nil for the
// protobuf scopes).
func goScopeType(scope FieldScope, p Platform) reflect.Type {
	switch scope {
	case ScopeSpec:
		return reflect.TypeFor[specs.Spec]()
	case ScopeProcess:
		return reflect.TypeFor[specs.Process]()
	case ScopeResources:
		if p == Windows {
			return reflect.TypeFor[specs.WindowsResources]()
		}
		return reflect.TypeFor[specs.LinuxResources]()
	}
	return nil
}

// compileFieldPath resolves a JSON name path in t into struct field indexes.
func compileFieldPath(t reflect.Type, path string) ([]fieldStep, error) {
	var steps []fieldStep
	for _, elem := range strings.Split(path, ".") {
		name, each := strings.CutSuffix(elem, "[]")
		if !each {
			name, each = strings.CutSuffix(elem, "{}")
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil, fmt.Errorf("%q: not a struct", elem)
		}
		sf, ok := jsonField(t, name)
		if !ok {
			return nil, fmt.Errorf("no field %q in %s", name, t)
		}
		steps = append(steps, fieldStep{index: sf.Index, each: each})
		t = sf.Type
		if each {
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Map {
				return nil, fmt.Errorf("%q: not a list or map", elem)
			}
			t = t.Elem()
		}
	}
	return steps, nil
}

// jsonField finds the struct field with that JSON name (promoted fields included).
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	for _, sf := range reflect.VisibleFields(t) {
		if sf.Anonymous && sf.Tag.Get("json") == "" {
			continue
		}
		n, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if n == "" {
			n = sf.Name
		}
		if n == name {
			return sf, true
		}
	}
	return reflect.StructField{}, false
}

// fieldIsSet reports whether the path's value is set (non-zero; a list or map: non-empty)
// anywhere in v.
func fieldIsSet(v reflect.Value, steps []fieldStep) bool {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return false
		}
		v = v.Elem()
	}
	if len(steps) == 0 {
		return !v.IsZero() && !(isCollection(v) && v.Len() == 0)
	}
	s := steps[0]
	f := v.FieldByIndex(s.index)
	if !s.each {
		return fieldIsSet(f, steps[1:])
	}
	for f.Kind() == reflect.Pointer {
		if f.IsNil() {
			return false
		}
		f = f.Elem()
	}
	if len(steps) == 1 {
		return f.Len() > 0
	}
	switch f.Kind() {
	case reflect.Slice:
		for i := range f.Len() {
			if fieldIsSet(f.Index(i), steps[1:]) {
				return true
			}
		}
	case reflect.Map:
		for it := f.MapRange(); it.Next(); {
			if fieldIsSet(it.Value(), steps[1:]) {
				return true
			}
		}
	}
	return false
}

func isCollection(v reflect.Value) bool {
	return v.Kind() == reflect.Slice || v.Kind() == reflect.Map
}

// validateFieldTable checks the table's entries (run at initialisation: a malformed entry
// cannot ship).
func validateFieldTable(table []FieldInfo) error {
	type key struct {
		scope FieldScope
		path  string
		p     Platform
	}
	seen := map[key]bool{}
	for _, f := range table {
		if !slices.Contains(FieldScopes(), f.Scope) {
			return fmt.Errorf("%s: unknown scope %q", f.Path, f.Scope)
		}
		if f.Path == "" || f.Why == "" {
			return fmt.Errorf("%s %q: no path or no reason", f.Scope, f.Path)
		}
		switch f.Class {
		case FieldSafe:
			if f.Rule != "" {
				return fmt.Errorf("%s %s: a safe field names rule %s", f.Scope, f.Path, f.Rule)
			}
		case FieldInspected, FieldDenied:
			if ruleByID(f.Rule) == nil && f.Rule != RuleInvalidInput {
				return fmt.Errorf("%s %s: unknown rule %q", f.Scope, f.Path, f.Rule)
			}
		default:
			return fmt.Errorf("%s %s: class %q", f.Scope, f.Path, f.Class)
		}
		for _, p := range []Platform{Windows, Linux} {
			if !f.appliesTo(p) {
				continue
			}
			k := key{f.Scope, f.Path, p}
			if seen[k] {
				return fmt.Errorf("%s %s (%s) classified twice", f.Scope, f.Path, p)
			}
			seen[k] = true
		}
	}
	return nil
}

// ProtoFieldPaths lists the proto name paths of every leaf field of a message, for the
// walks that check the table (messages of google.protobuf, such as Any, are leaves).
func ProtoFieldPaths(md protoreflect.MessageDescriptor) []string {
	var out []string
	protoLeaves(md, "", &out, 0)
	return out
}

func protoLeaves(md protoreflect.MessageDescriptor, prefix string, out *[]string, depth int) {
	if depth > 8 {
		panic(prefix + ": recursive message")
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		p := joinPath(prefix, string(fd.Name()))
		switch {
		case fd.IsMap():
			if v := fd.MapValue(); v.Kind() == protoreflect.MessageKind && !isWellKnown(v.Message()) {
				protoLeaves(v.Message(), p+"{}", out, depth+1)
			} else {
				*out = append(*out, p+"{}")
			}
		case fd.Kind() == protoreflect.MessageKind && !isWellKnown(fd.Message()):
			if fd.IsList() {
				p += "[]"
			}
			protoLeaves(fd.Message(), p, out, depth+1)
		case fd.IsList():
			*out = append(*out, p+"[]")
		default:
			*out = append(*out, p)
		}
	}
}

func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return strings.HasPrefix(string(md.FullName()), "google.protobuf.")
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// CheckFieldsClassified returns an error for every walked leaf of scope without a
// classification, and for every entry of scope that classifies none of them (renamed or
// removed upstream, or shadowed by more specific entries).
func CheckFieldsClassified(scope FieldScope, leaves map[Platform][]string) []error {
	var errs []error
	used := map[string]bool{}
	for _, p := range []Platform{Windows, Linux} {
		if len(leaves[p]) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): no fields walked", scope, p))
		}
		for _, leaf := range leaves[p] {
			f, ok := ClassifyField(p, scope, leaf)
			if !ok {
				errs = append(errs, fmt.Errorf("%s field %s is not classified for %s: add it to policy/fields_table.go as inspected by a rule, safe (and why) or denied", scope, leaf, p))
				continue
			}
			used[f.Path+"|"+string(p)] = true
		}
	}
	for _, f := range fieldTable {
		for _, p := range []Platform{Windows, Linux} {
			if f.Scope == scope && f.appliesTo(p) && !used[f.Path+"|"+string(p)] {
				errs = append(errs, fmt.Errorf("%s entry %s (%s) classifies no field", scope, f.Path, p))
			}
		}
	}
	return errs
}
