package enforce

import (
	"testing"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"google.golang.org/protobuf/proto"

	"github.com/isoguard/isoguard/policy"
)

// TestTaskRequestFieldsClassified walks every field of the task API requests the wrapper
// hands to the hooks (shim/internal/relay intercept.go) and fails on one the policy's field
// table does not classify: a field containerd's API gains fails here until someone decides
// what it means for an untrusted tenant.
func TestTaskRequestFieldsClassified(t *testing.T) {
	for scope, msg := range map[policy.FieldScope]proto.Message{
		policy.ScopeCreate: &taskv2.CreateTaskRequest{},
		policy.ScopeExec:   &taskv2.ExecProcessRequest{},
		policy.ScopeUpdate: &taskv2.UpdateTaskRequest{},
	} {
		leaves := policy.ProtoFieldPaths(msg.ProtoReflect().Descriptor())
		for _, err := range policy.CheckFieldsClassified(scope, map[policy.Platform][]string{policy.Windows: leaves, policy.Linux: leaves}) {
			t.Error(err)
		}
	}
}
