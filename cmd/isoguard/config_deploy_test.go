package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/isoguard/isoguard/policy"
)

// The manifests under deploy/kubernetes, decoded strictly into their k8s.io/api types, and
// checked for what the install depends on.

const deployDir = "../../deploy"

// manifestObjects holds every object of deploy/kubernetes/*.yaml by kind.
type manifestObjects struct {
	namespaces  []corev1.Namespace
	configMaps  []corev1.ConfigMap
	daemonSets  []appsv1.DaemonSet
	classes     []nodev1.RuntimeClass
	vaps        []admissionv1.ValidatingAdmissionPolicy
	vapBindings []admissionv1.ValidatingAdmissionPolicyBinding
	files       map[string][]string // file -> kinds, in order
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// k8sUnmarshalStrict decodes one YAML document the way the API server decodes a strict
// request: YAML to JSON refusing duplicate keys, then sigs.k8s.io/json, which matches field
// names case-sensitively and reports unknown and duplicate fields. (encoding/json, which
// sigs.k8s.io/yaml.UnmarshalStrict uses, would accept "hostprocess" for "hostProcess".)
func k8sUnmarshalStrict(doc []byte, out any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, out)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// decodeStrict decodes one YAML document into out with k8sUnmarshalStrict.
func decodeStrict(t *testing.T, where string, doc []byte, out any) {
	t.Helper()
	if err := k8sUnmarshalStrict(doc, out); err != nil {
		t.Fatalf("%s: strict decode into %T: %v", where, out, err)
	}
}

func loadManifests(t *testing.T) manifestObjects {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(deployDir, "kubernetes", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in %s/kubernetes: %v", deployDir, err)
	}
	m := manifestObjects{files: map[string][]string{}}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(data), -1) {
			where := filepath.Base(p) + " document " + string(rune('1'+i))
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if meta.APIVersion == "" && meta.Kind == "" {
				if strings.TrimSpace(stripComments(doc)) != "" {
					t.Fatalf("%s: a document without apiVersion and kind", where)
				}
				continue
			}
			m.files[filepath.Base(p)] = append(m.files[filepath.Base(p)], meta.Kind)
			switch meta.APIVersion + " " + meta.Kind {
			case "v1 Namespace":
				var o corev1.Namespace
				decodeStrict(t, where, []byte(doc), &o)
				m.namespaces = append(m.namespaces, o)
			case "v1 ConfigMap":
				var o corev1.ConfigMap
				decodeStrict(t, where, []byte(doc), &o)
				m.configMaps = append(m.configMaps, o)
			case "apps/v1 DaemonSet":
				var o appsv1.DaemonSet
				decodeStrict(t, where, []byte(doc), &o)
				m.daemonSets = append(m.daemonSets, o)
			case "node.k8s.io/v1 RuntimeClass":
				var o nodev1.RuntimeClass
				decodeStrict(t, where, []byte(doc), &o)
				m.classes = append(m.classes, o)
			case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy":
				var o admissionv1.ValidatingAdmissionPolicy
				decodeStrict(t, where, []byte(doc), &o)
				m.vaps = append(m.vaps, o)
			case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding":
				var o admissionv1.ValidatingAdmissionPolicyBinding
				decodeStrict(t, where, []byte(doc), &o)
				m.vapBindings = append(m.vapBindings, o)
			default:
				t.Fatalf("%s: %s %s has no decoder in this test; add one", where, meta.APIVersion, meta.Kind)
			}
		}
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestDeployManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	want := map[string][]string{
		"isoguard.yaml":         {"Namespace", "ConfigMap", "DaemonSet"},
		"runtimeclass.yaml":     {"RuntimeClass"},
		"admission-policy.yaml": {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
	}
	for f, kinds := range want {
		if !slices.Equal(m.files[f], kinds) {
			t.Errorf("%s holds %v, want %v", f, m.files[f], kinds)
		}
	}
	for f := range m.files {
		if _, ok := want[f]; !ok {
			t.Errorf("%s: a manifest this test does not know; list what it must hold", f)
		}
	}
}

// TestDeployManifestsStrictDecodeCatchesTypos: the decoder rejects a misspelled field deep
// inside a DaemonSet, so the test above can fail.
func TestDeployManifestsStrictDecodeCatchesTypos(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "isoguard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := docSeparator.Split(string(data), -1)
	ds := docs[len(docs)-1]
	bad := strings.Replace(ds, "hostProcess: true", "hostprocess: true", 1)
	if bad == ds {
		t.Fatal("no hostProcess field in the DaemonSet document")
	}
	var o appsv1.DaemonSet
	if err := k8sUnmarshalStrict([]byte(ds), &o); err != nil {
		t.Fatalf("the DaemonSet itself does not decode: %v", err)
	}
	for name, doc := range map[string]string{
		"misspelled field": bad,
		"unknown field":    strings.Replace(ds, "hostNetwork: true", "hostNetwork: true\n      hostIPC: true\n      hostNetworking: true", 1),
		"duplicate key":    strings.Replace(ds, "hostNetwork: true", "hostNetwork: true\n      hostNetwork: false", 1),
		"wrong type":       strings.Replace(ds, "hostNetwork: true", "hostNetwork: \"yes\"", 1),
	} {
		var o appsv1.DaemonSet
		if err := k8sUnmarshalStrict([]byte(doc), &o); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestDeployDaemonSet(t *testing.T) {
	m := loadManifests(t)
	if len(m.namespaces) != 1 || len(m.configMaps) != 1 || len(m.daemonSets) != 1 {
		t.Fatalf("want one Namespace, ConfigMap and DaemonSet, have %d, %d, %d", len(m.namespaces), len(m.configMaps), len(m.daemonSets))
	}
	ns, cm, ds := m.namespaces[0], m.configMaps[0], m.daemonSets[0]
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("namespace %s: pod-security enforce = %q; HostProcess pods need privileged", ns.Name, ns.Labels["pod-security.kubernetes.io/enforce"])
	}
	if cm.Namespace != ns.Name || ds.Namespace != ns.Name {
		t.Errorf("ConfigMap in %q, DaemonSet in %q, want both in %q", cm.Namespace, ds.Namespace, ns.Name)
	}

	spec := ds.Spec.Template.Spec
	sc := spec.SecurityContext
	if sc == nil || sc.WindowsOptions == nil || sc.WindowsOptions.HostProcess == nil || !*sc.WindowsOptions.HostProcess {
		t.Fatal("pod securityContext.windowsOptions.hostProcess is not true")
	}
	if u := sc.WindowsOptions.RunAsUserName; u == nil || *u != `NT AUTHORITY\SYSTEM` {
		t.Errorf("runAsUserName = %v, want NT AUTHORITY\\SYSTEM", u)
	}
	if !spec.HostNetwork {
		t.Error("hostNetwork is false; HostProcess pods need it")
	}
	if spec.NodeSelector[corev1.LabelOSStable] != "windows" {
		t.Errorf("nodeSelector = %v, want kubernetes.io/os: windows", spec.NodeSelector)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken should be false: the installer does not use the API")
	}
	sel := ds.Spec.Selector
	if sel == nil || len(sel.MatchLabels) == 0 {
		t.Fatal("no selector")
	}
	for k, v := range sel.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template's labels %v", k, v, ds.Spec.Template.Labels)
		}
	}
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("want one init container and one container, have %d and %d", len(spec.InitContainers), len(spec.Containers))
	}
	install := spec.InitContainers[0]
	if install.Image != spec.Containers[0].Image {
		t.Errorf("the containers use different images: %s and %s", install.Image, spec.Containers[0].Image)
	}
	cmd := strings.Join(install.Command, " ")
	for _, s := range []string{"install.ps1", "CONTAINER_SANDBOX_MOUNT_POINT", "-PolicyEnv ISOGUARD_POLICY", "-Default", "-ReplaceBuiltin", "exit $LASTEXITCODE"} {
		if !strings.Contains(cmd, s) {
			t.Errorf("install command does not contain %q: %s", s, cmd)
		}
	}
	// The policy arrives through ISOGUARD_POLICY from the ConfigMap's policy.yaml.
	var ref *corev1.ConfigMapKeySelector
	for _, e := range install.Env {
		if e.Name == "ISOGUARD_POLICY" && e.ValueFrom != nil {
			ref = e.ValueFrom.ConfigMapKeyRef
		}
	}
	if ref == nil || ref.Name != cm.Name {
		t.Fatalf("ISOGUARD_POLICY does not come from ConfigMap %s: %+v", cm.Name, install.Env)
	}
	text, ok := cm.Data[ref.Key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q", cm.Name, ref.Key)
	}

	// The ConfigMap's policy is the default policy install.ps1 ships, and it is valid.
	def, err := os.ReadFile(filepath.Join(deployDir, "windows", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if text != string(def) {
		t.Errorf("ConfigMap %s %s differs from deploy/windows/policy.yaml; keep them equal", cm.Name, ref.Key)
	}
	f, err := policy.Parse([]byte(text))
	if err != nil {
		t.Fatalf("ConfigMap policy: %v", err)
	}
	if _, err := policy.Compile(f, policy.Windows); err != nil {
		t.Fatalf("ConfigMap policy for Windows: %v", err)
	}
	// Once isoguard is the node's default runtime, the installer's own HostProcess pods run
	// through it: their namespace must be a trusted tenant, and so must kube-system.
	for _, need := range []string{ns.Name, "kube-system"} {
		if !slices.ContainsFunc(f.Tenants, func(t policy.Tenant) bool { return t.KubernetesNamespace == need && t.IsTrusted() }) {
			t.Errorf("the policy does not trust namespace %s", need)
		}
	}

	// Every install.ps1 parameter the DaemonSet passes exists.
	script, err := os.ReadFile(filepath.Join(deployDir, "windows", "install.ps1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range regexp.MustCompile(`\s-([A-Z][A-Za-z]+)`).FindAllStringSubmatch(install.Command[len(install.Command)-1], -1) {
		if !regexp.MustCompile(`\[(string|switch)\]\s+\$` + p[1] + `\b`).Match(script) {
			t.Errorf("install.ps1 has no parameter -%s, which the DaemonSet passes", p[1])
		}
	}
}

func TestDeployRuntimeClassIsGenerated(t *testing.T) {
	got, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "runtimeclass.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, want, _ := cfgRun("config", "runtimeclass")
	if string(got) != want {
		t.Errorf("deploy/kubernetes/runtimeclass.yaml differs from `isoguard config runtimeclass`; regenerate it:\n  go run ./cmd/isoguard config runtimeclass > deploy/kubernetes/runtimeclass.yaml")
	}
}

func TestDeployAdmissionPolicy(t *testing.T) {
	m := loadManifests(t)
	if len(m.vaps) != 1 || len(m.vapBindings) != 1 || len(m.classes) != 1 {
		t.Fatalf("want one ValidatingAdmissionPolicy, binding and RuntimeClass; have %d, %d, %d", len(m.vaps), len(m.vapBindings), len(m.classes))
	}
	vap, b, rc := m.vaps[0], m.vapBindings[0], m.classes[0]
	if b.Spec.PolicyName != vap.Name {
		t.Errorf("binding names policy %q, the policy is %q", b.Spec.PolicyName, vap.Name)
	}
	if !slices.Contains(b.Spec.ValidationActions, admissionv1.Deny) {
		t.Errorf("binding actions %v, want Deny", b.Spec.ValidationActions)
	}
	if b.Spec.MatchResources == nil || b.Spec.MatchResources.NamespaceSelector == nil || len(b.Spec.MatchResources.NamespaceSelector.MatchLabels) == 0 {
		t.Error("binding selects no tenant namespaces")
	}
	if vap.Spec.FailurePolicy == nil || *vap.Spec.FailurePolicy != admissionv1.Fail {
		t.Error("failurePolicy must be Fail (fail closed)")
	}
	var pods bool
	for _, r := range vap.Spec.MatchConstraints.ResourceRules {
		if slices.Contains(r.Resources, "pods") && slices.Contains(r.Operations, admissionv1.Create) && slices.Contains(r.APIGroups, "") {
			pods = true
		}
	}
	if !pods {
		t.Error("the policy does not match pod creation")
	}
	if len(vap.Spec.Validations) != 1 || !strings.Contains(vap.Spec.Validations[0].Expression, "object.spec.runtimeClassName == '"+rc.Name+"'") {
		t.Errorf("the validation does not require runtimeClassName %q: %+v", rc.Name, vap.Spec.Validations)
	}
}

// TestDeployInstallerImage checks that the Dockerfile copies files that exist (binaries
// named after the main packages that build them).
func TestDeployInstallerImage(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "installer.Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "COPY" {
			continue
		}
		for _, src := range fields[1 : len(fields)-1] {
			if name, ok := strings.CutPrefix(src, "out/windows/"); ok {
				pkg := filepath.Join("..", strings.TrimSuffix(name, ".exe"))
				if _, err := os.Stat(filepath.Join(pkg, "main.go")); err != nil {
					t.Errorf("COPY %s: no main package cmd/%s builds it", src, strings.TrimSuffix(name, ".exe"))
				}
				continue
			}
			if _, err := os.Stat(filepath.Join("..", "..", src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
		}
	}
	if !bytes.Contains(data, []byte("windows-host-process-containers-base-image")) {
		t.Error("the installer image is not built on the HostProcess base image")
	}
}
