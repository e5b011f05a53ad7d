package main

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// decodeRuntimeClass decodes YAML strictly (k8sUnmarshalStrict): an unknown or misspelled
// field, a field in the wrong case or a duplicate key is an error.
func decodeRuntimeClass(t *testing.T, y string) nodev1.RuntimeClass {
	t.Helper()
	var rc nodev1.RuntimeClass
	if err := k8sUnmarshalStrict([]byte(y), &rc); err != nil {
		t.Fatalf("strict decode into node/v1 RuntimeClass: %v\n%s", err, y)
	}
	return rc
}

func TestConfigRuntimeClass(t *testing.T) {
	for _, tc := range []struct {
		golden        string
		args          []string
		name, handler string
		cpu, memory   string // "" = no overhead
	}{
		{"runtimeclass.yaml", nil, "isoguard", "isoguard", DefaultOverheadCPU, DefaultOverheadMemory},
		{"runtimeclass-custom.yaml", []string{"--handler", "tenant-hv", "--name", "hyperv", "--overhead-cpu", "1", "--overhead-memory", "1Gi"}, "hyperv", "tenant-hv", "1", "1Gi"},
		{"runtimeclass-no-overhead.yaml", []string{"--handler", "123", "--no-overhead"}, "123", "123", "", ""},
		{"runtimeclass-linux.yaml", []string{"--os", "linux"}, "isoguard", "isoguard", DefaultLinuxOverheadCPU, DefaultLinuxOverheadMemory},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, errOut := cfgRun(append([]string{"config", "runtimeclass"}, tc.args...)...)
			if code != exitOK || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			cfgGolden(t, tc.golden, out)

			rc := decodeRuntimeClass(t, out)
			if rc.APIVersion != "node.k8s.io/v1" || rc.Kind != "RuntimeClass" {
				t.Errorf("apiVersion/kind = %s/%s", rc.APIVersion, rc.Kind)
			}
			if rc.Name != tc.name || rc.Handler != tc.handler {
				t.Errorf("name %q handler %q, want %q %q", rc.Name, rc.Handler, tc.name, tc.handler)
			}
			if tc.cpu == "" {
				if rc.Overhead != nil {
					t.Errorf("overhead = %v, want none", rc.Overhead)
				}
			} else {
				if rc.Overhead == nil {
					t.Fatal("no overhead")
				}
				cpu, mem := rc.Overhead.PodFixed[corev1.ResourceCPU], rc.Overhead.PodFixed[corev1.ResourceMemory]
				if cpu.Cmp(resource.MustParse(tc.cpu)) != 0 || mem.Cmp(resource.MustParse(tc.memory)) != 0 || len(rc.Overhead.PodFixed) != 2 {
					t.Errorf("overhead.podFixed = %v, want cpu %s memory %s", rc.Overhead.PodFixed, tc.cpu, tc.memory)
				}
			}
			if rc.Scheduling == nil {
				t.Fatal("no scheduling")
			}
			os := "windows"
			if slices.Contains(tc.args, "linux") {
				os = "linux"
			}
			if got := rc.Scheduling.NodeSelector; len(got) != 1 || got[corev1.LabelOSStable] != os {
				t.Errorf("scheduling.nodeSelector = %v, want only kubernetes.io/os: %s", got, os)
			}
			want := corev1.Toleration{Key: "os", Operator: corev1.TolerationOpEqual, Value: "windows", Effect: corev1.TaintEffectNoSchedule}
			if got := rc.Scheduling.Tolerations; os == "windows" && (len(got) != 1 || got[0] != want) || os == "linux" && len(got) != 0 {
				t.Errorf("scheduling.tolerations = %+v", got)
			}
		})
	}
}

// TestConfigRuntimeClassStrictDecodeCatchesTypos proves the decoding above is strict: the
// same document with a misspelled field or a duplicate key does not decode.
func TestConfigRuntimeClassStrictDecodeCatchesTypos(t *testing.T) {
	_, out, _ := cfgRun("config", "runtimeclass")
	for name, bad := range map[string]string{
		"misspelled field":  strings.Replace(out, "handler:", "handlr:", 1),
		"misspelled nested": strings.Replace(out, "podFixed:", "podfixed:", 1),
		"duplicate key":     strings.Replace(out, "handler: ", "handler: \"x\"\nhandler: ", 1),
	} {
		if bad == out {
			t.Fatalf("%s: the replacement did not apply", name)
		}
		var rc nodev1.RuntimeClass
		if err := k8sUnmarshalStrict([]byte(bad), &rc); err == nil {
			t.Errorf("%s: strict decode accepted it", name)
		}
	}
}

func TestConfigRuntimeClassErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad cpu", []string{"--overhead-cpu", "lots"}, `--overhead-cpu: "lots" is not a Kubernetes quantity`},
		{"negative memory", []string{"--overhead-memory", "-1Gi"}, `--overhead-memory: "-1Gi" must be positive`},
		{"zero cpu", []string{"--overhead-cpu", "0"}, "--overhead-cpu:"},
		{"bad name", []string{"--name", "Iso_Guard"}, `--name: "Iso_Guard" is not a lowercase RFC 1123 label`},
		{"bad handler", []string{"--handler", "a.b"}, "--handler:"},
		{"positional", []string{"isoguard"}, `unexpected argument "isoguard"`},
		{"unknown flag", []string{"--overhead", "1"}, "flag provided but not defined: -overhead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cfgRun(append([]string{"config", "runtimeclass"}, tc.args...)...)
			if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errOut, tc.want)
			}
		})
	}
}
