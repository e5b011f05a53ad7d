package jsonedit

import (
	"encoding/json"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// orig is a config.json as a newer containerd might write it: fields runtime-spec v1.3.0
// does not know at several depths.
const orig = `{
  "ociVersion": "1.3.0",
  "x-top": {"keep": [1, 2.50, "three"]},
  "process": {
    "user": {"uid": 0, "gid": 0, "x-user": "kept"},
    "args": ["sh"],
    "cwd": "/",
    "x-process": true
  },
  "root": {"path": "rootfs", "x-root": 1e3},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc", "x-mount": "m0"},
    {"destination": "/data", "type": "bind", "source": "/var/lib/x", "options": ["rbind"], "x-mount": "m1"}
  ],
  "annotations": {"a": "1", "dev.gvisor.flag.network": "host"},
  "linux": {"resources": {"memory": {"limit": 1048576, "x-mem": "kept"}}, "x-linux": {"deep": {"deeper": 42}}}
}`

func TestRewriteKeepsWhatItDoesNotChange(t *testing.T) {
	var before specs.Spec
	if err := json.Unmarshal([]byte(orig), &before); err != nil {
		t.Fatal(err)
	}
	after := before
	user := *before.Process
	user.User.UID, user.User.GID = 65534, 65534
	after.Process = &user
	after.Annotations = map[string]string{"a": "1", "added": "yes"} // one removed, one added
	out, err := Rewrite([]byte(orig), &before, &after)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	// The changes are applied...
	var spec specs.Spec
	if err := json.Unmarshal(out, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Process.User.UID != 65534 || spec.Process.User.GID != 65534 || spec.Annotations["added"] != "yes" {
		t.Fatalf("changes not applied: %s", out)
	}
	if _, ok := spec.Annotations["dev.gvisor.flag.network"]; ok {
		t.Fatalf("removed annotation still there: %s", out)
	}
	// ...and every unknown field survives, at every depth, numbers as written.
	for _, want := range []string{`"x-top":{"keep":[1,2.50,"three"]}`, `"x-user":"kept"`, `"x-process":true`, `"x-root":1e3`, `"x-mount":"m0"`, `"x-mount":"m1"`, `"x-mem":"kept"`, `"x-linux":{"deep":{"deeper":42}}`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lost %s:\n%s", want, out)
		}
	}
	// Re-serialising the struct (what the wrapper did before) would have lost them.
	naive, _ := json.Marshal(&after)
	if strings.Contains(string(naive), "x-user") {
		t.Fatal("the test's document has no field runtime-spec does not know")
	}
}

func TestRewriteUnchangedIsTheDocument(t *testing.T) {
	var before specs.Spec
	if err := json.Unmarshal([]byte(orig), &before); err != nil {
		t.Fatal(err)
	}
	out, err := Rewrite([]byte(orig), &before, &before)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	json.Unmarshal([]byte(orig), &a)
	json.Unmarshal(out, &b)
	if !jsonEqual(a, b) {
		t.Fatalf("an unchanged value changed the document:\n%s", out)
	}
}

func TestRewriteArraysAndErrors(t *testing.T) {
	type proc struct {
		Gids []int `json:"gids"`
	}
	out, err := Rewrite([]byte(`{"gids":[0,1,2],"x":1}`), proc{Gids: []int{0, 1, 2}}, proc{Gids: []int{1, 2}})
	if err != nil || string(out) != `{"gids":[1,2],"x":1}` {
		t.Fatalf("a shorter array replaces the old one: %s %v", out, err)
	}
	if _, err := Rewrite([]byte(`{"a":1} {"b":2}`), proc{}, proc{}); err == nil {
		t.Fatal("two JSON values must be an error")
	}
	if _, err := Rewrite([]byte(`not json`), proc{}, proc{}); err == nil {
		t.Fatal("invalid JSON must be an error")
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
