package relay

import (
	"fmt"
	"testing"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestTaskV3IsV2OnTheWire: the wrapper serves containerd.task.v3.Task with the handlers of
// v2 (which decode v2 messages): v3 must have exactly v2's methods, with request and response
// messages that are the same on the wire, field for field.
func TestTaskV3IsV2OnTheWire(t *testing.T) {
	create := (&taskv2.CreateTaskRequest{}).ProtoReflect().Descriptor()
	if wireDiff(create, (&taskv2.ExecProcessRequest{}).ProtoReflect().Descriptor(), 0) == "" {
		t.Fatal("wireDiff finds no difference between CreateTaskRequest and ExecProcessRequest")
	}
	v2 := taskv2.File_runtime_task_v2_shim_proto.Services().ByName("Task").Methods()
	v3 := taskv3.File_runtime_task_v3_shim_proto.Services().ByName("Task").Methods()
	if v2.Len() != v3.Len() {
		t.Errorf("task v3 has %d methods, v2 %d", v3.Len(), v2.Len())
	}
	for i := range v3.Len() {
		m3 := v3.Get(i)
		m2 := v2.ByName(m3.Name())
		if m2 == nil {
			t.Errorf("task v3 method %s is not in v2", m3.Name())
			continue
		}
		for _, pair := range [][2]protoreflect.MessageDescriptor{{m2.Input(), m3.Input()}, {m2.Output(), m3.Output()}} {
			if d := wireDiff(pair[0], pair[1], 0); d != "" {
				t.Errorf("%s: %s and %s differ on the wire: %s", m3.Name(), pair[0].FullName(), pair[1].FullName(), d)
			}
		}
	}
}

// wireDiff compares two messages' fields by number, kind and cardinality (recursively for
// messages): "" when they are the same on the wire.
func wireDiff(a, b protoreflect.MessageDescriptor, depth int) string {
	if depth > 6 {
		return ""
	}
	fa, fb := a.Fields(), b.Fields()
	if fa.Len() != fb.Len() {
		return fmt.Sprintf("%d fields vs %d", fa.Len(), fb.Len())
	}
	for i := range fa.Len() {
		x := fa.Get(i)
		y := fb.ByNumber(x.Number())
		if y == nil || x.Kind() != y.Kind() || x.Cardinality() != y.Cardinality() || x.IsMap() != y.IsMap() {
			return fmt.Sprintf("field %d (%s)", x.Number(), x.Name())
		}
		if x.Kind() == protoreflect.MessageKind && !x.IsMap() {
			if d := wireDiff(x.Message(), y.Message(), depth+1); d != "" {
				return string(x.Name()) + ": " + d
			}
		}
	}
	return ""
}
