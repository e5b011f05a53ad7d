package harness

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestCRIConfigTOML(t *testing.T) {
	handlers := []RuntimeHandler{
		RuncHandler(),
		{Name: "isoguard", Type: "io.containerd.isoguard.v1", Path: "/opt/ig/containerd-shim-isoguard-v1",
			Options:        map[string]any{"BinaryName": "/usr/sbin/runc", "SystemdCgroup": false, "IoUid": 0},
			PodAnnotations: []string{"isoguard.dev/*"}},
	}
	net := criNet{Name: "ig-cri-1", Bridge: "igb1", Subnet: "10.200.1.0/24", ConfDir: "/tmp/ig-1/cni", IPAMDir: "/tmp/ig-1/ipam"}
	for version, want := range map[string][]string{
		"2.4": {"version = 3\n",
			`[plugins."io.containerd.cri.v1.runtime"]` + "\n",
			"  restrict_oom_score_adj = true\n  enable_unprivileged_icmp = false\n",
			`  [plugins."io.containerd.cri.v1.runtime".cni]` + "\n    bin_dirs = [\"/usr/lib/cni\"]\n    conf_dir = \"/tmp/ig-1/cni\"\n",
			`    default_runtime_name = "isoguard"` + "\n",
			`    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes."runc"]` + "\n      runtime_type = \"io.containerd.runc.v2\"\n",
			`      runtime_path = "/opt/ig/containerd-shim-isoguard-v1"` + "\n",
			`      pod_annotations = ["isoguard.dev/*"]` + "\n",
			`      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes."isoguard".options]` + "\n        BinaryName = \"/usr/sbin/runc\"\n        IoUid = 0\n        SystemdCgroup = false\n",
			`[plugins."io.containerd.cri.v1.images".pinned_images]` + "\n  sandbox = \"" + CRIPauseImage + "\"\n",
			`[plugins."io.containerd.grpc.v1.cri"]` + "\n  stream_server_address = \"127.0.0.1\"\n",
		},
		"1.7": {"version = 2\n",
			`[plugins."io.containerd.grpc.v1.cri"]` + "\n  sandbox_image = \"" + CRIPauseImage + "\"\n",
			"  restrict_oom_score_adj = true\n  enable_unprivileged_icmp = false\n",
			`    bin_dir = "/usr/lib/cni"` + "\n",
			`    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes."isoguard"]` + "\n",
		},
	} {
		d := &Daemon{Version: version, Dir: "/tmp/ig-1", Root: "/tmp/ig-1/root", State: "/tmp/ig-1/state",
			Address: "/tmp/ig-1/c.sock", TTRPCAddress: "/tmp/ig-1/c.sock.ttrpc"}
		cfg, err := criConfigTOML(d, CRIOptions{Handlers: handlers, DefaultRuntime: "isoguard", RuntimeConfig: map[string]any{"enable_unprivileged_icmp": false}}, net, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(cfg, w) {
				t.Errorf("%s config lacks %q:\n%s", version, w, cfg)
			}
		}
		if strings.Contains(cfg, "io.containerd.grpc.v1.cri\", ") || strings.Contains(cfg, `"io.containerd.podsandbox`) {
			t.Errorf("%s: CRI plugins disabled:\n%s", version, cfg)
		}
		if version == "1.7" && strings.Contains(cfg, "io.containerd.cri.v1") {
			t.Errorf("1.7 config names 2.x plugins:\n%s", cfg)
		}
	}
	if _, err := criConfigTOML(&Daemon{Version: "1.6"}, CRIOptions{}, net, false); err == nil {
		t.Error("1.6 accepted")
	}
	d := &Daemon{Version: "2.4"}
	if _, err := criConfigTOML(d, CRIOptions{Handlers: []RuntimeHandler{{Name: "x", Type: "t", Options: map[string]any{"a": 1.5}}}}, net, false); err == nil {
		t.Error("float option accepted")
	}
	if _, err := criConfigTOML(d, CRIOptions{RuntimeConfig: map[string]any{"a": 1.5}}, net, false); err == nil {
		t.Error("float runtime config value accepted")
	}
}

func TestConflist(t *testing.T) {
	n := criNet{Name: "ig-cri-1", Bridge: "igb1", Subnet: "10.200.1.0/24", IPAMDir: "/tmp/ig-1/ipam"}
	var c struct {
		Name    string `json:"name"`
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPMasq *bool  `json:"ipMasq"`
			IPAM   struct {
				Type    string `json:"type"`
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(n.conflist()), &c); err != nil {
		t.Fatal(err)
	}
	p := c.Plugins[0]
	if c.Name != "ig-cri-1" || p.Type != "bridge" || p.Bridge != "igb1" || p.IPMasq == nil || *p.IPMasq || p.IPAM.Type != "host-local" || p.IPAM.DataDir != "/tmp/ig-1/ipam" {
		t.Fatalf("conflist: %s", n.conflist())
	}
}

func TestCRIIDsInLog(t *testing.T) {
	id1, id2 := strings.Repeat("a", 64), strings.Repeat("b", 64)
	log := `time="x" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:p,} returns sandbox id \"` + id1 + `\""` + "\n" +
		`time="x" level=info msg="CreateContainer within sandbox \"` + id1 + `\" for &ContainerMetadata{Name:c,} returns container id \"` + id2 + `\""` + "\n" +
		`time="x" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:p,} returns sandbox id \"` + id1 + `\""` + "\n"
	got := criIDsInLog(log)
	if len(got) != 2 || got[0] != id1 || got[1] != id2 {
		t.Fatalf("criIDsInLog = %v", got)
	}
}

func TestShimAddressesInLog(t *testing.T) {
	log := `time="x" level=info msg="connecting to shim abc" address="unix:///run/containerd/s/0123abcd" namespace=k8s.io protocol=ttrpc version=3` + "\n" +
		`time="x" level=debug msg="shim bootstrap parameters" address="unix:///run/containerd/s/0123abcd" protocol=ttrpc` + "\n" +
		`time="x" level=debug msg="shim bootstrap parameters" address=unix:///run/containerd/s/isoguard-ff.sock protocol=ttrpc` + "\n"
	got := shimAddressesInLog(log)
	if strings.Join(got, " ") != "/run/containerd/s/0123abcd /run/containerd/s/isoguard-ff.sock" {
		t.Fatalf("shimAddressesInLog = %v", got)
	}
}

func TestPodAndContainerJSON(t *testing.T) {
	uid := int64(1000)
	p := podJSON(PodConfig{Name: "p", HostNetwork: true, Extra: map[string]any{"linux": map[string]any{"sysctls": map[string]any{"a": "1"}}}}, "u1", "/logs", "/ig-cri-1")
	linux := p["linux"].(map[string]any)
	if linux["cgroup_parent"] != "/ig-cri-1" || linux["sysctls"] == nil || linux["security_context"] == nil {
		t.Fatalf("pod JSON: %v", p)
	}
	c := containerJSON(ContainerConfig{Command: []string{"sh"}, RunAsUser: &uid, Env: map[string]string{"B": "2", "A": "1"}})
	b, _ := json.Marshal(c)
	for _, w := range []string{`"image":{"image":"` + CRIBusyboxImage + `"}`, `"run_as_user":{"value":1000}`, `"envs":[{"key":"A","value":"1"},{"key":"B","value":"2"}]`, `"log_path":"c.log"`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("container JSON lacks %s: %s", w, b)
		}
	}
}

func TestParseCritestReport(t *testing.T) {
	report := `[{"SpecReports":[
	 {"ContainerHierarchyTexts":["[k8s.io] Container","runtime should support basic operations on container"],"LeafNodeText":"runtime should support creating container [Conformance]","LeafNodeType":"It","State":"passed","RunTime":1500000000},
	 {"ContainerHierarchyTexts":["[k8s.io] Streaming"],"LeafNodeText":"runtime should support portforward","LeafNodeType":"It","State":"failed","RunTime":2000000000,"Failure":{"Message":"boom","Location":{"FileName":"streaming.go","LineNumber":9}}},
	 {"ContainerHierarchyTexts":["[k8s.io] Networking"],"LeafNodeText":"x","LeafNodeType":"It","State":"skipped"},
	 {"LeafNodeType":"BeforeSuite","State":"passed"}]}]`
	r, err := parseCritestReport([]byte(report))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Passed) != 1 || r.Passed[0] != "[k8s.io] Container runtime should support basic operations on container runtime should support creating container [Conformance]" {
		t.Errorf("passed: %v", r.Passed)
	}
	if len(r.Failed) != 1 || !strings.Contains(r.Failures[r.Failed[0]], "boom (streaming.go:9)") || len(r.Skipped) != 1 {
		t.Errorf("failed %v %v skipped %v", r.Failed, r.Failures, r.Skipped)
	}
	if r.SpecTimes[r.Passed[0]] != 1500*time.Millisecond {
		t.Errorf("spec time %v", r.SpecTimes[r.Passed[0]])
	}
}

func TestWriteOCIImages(t *testing.T) {
	layer := ImageLayer{DirEntry("bin", 0o755), FileEntry("bin/busybox", 0o755, []byte("bb")), HardlinkEntry("bin/sh", "bin/busybox"), SymlinkEntry("var/run", "../run")}
	imgs := []OCIImage{
		{Name: "example.com/a:1", Layers: []ImageLayer{layer}, Config: ImageConfig{Cmd: []string{"sh"}}},
		{Name: "example.com/b:2", Layers: []ImageLayer{layer, {FileEntry("x", 0o644, []byte("x"))}}, Config: ImageConfig{Entrypoint: []string{"/x"}, User: "1000"}},
	}
	var buf bytes.Buffer
	if err := WriteOCIImages(&buf, "amd64", imgs...); err != nil {
		t.Fatal(err)
	}
	readTar(t, buf.Bytes())
	outer := tarBodies
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(outer["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 2 || index.Manifests[1].Annotations["io.containerd.image.name"] != "example.com/b:2" || index.Manifests[1].Annotations["org.opencontainers.image.ref.name"] != "2" {
		t.Fatalf("index.json: %s", outer["index.json"])
	}
	blobs := 0
	for name := range outer {
		if strings.HasPrefix(name, "blobs/sha256/") && len(name) > len("blobs/sha256/") {
			blobs++
		}
	}
	if blobs != 6 { // 2 manifests, 2 configs, 2 layers: the shared one stored once
		t.Errorf("%d blobs, want 6", blobs)
	}
	var manifest struct {
		Layers []descriptor `json:"layers"`
	}
	json.Unmarshal(outer["blobs/sha256/"+strings.TrimPrefix(index.Manifests[0].Digest, "sha256:")], &manifest)
	files := readTar(t, outer["blobs/sha256/"+strings.TrimPrefix(manifest.Layers[0].Digest, "sha256:")])
	if h := files["bin/sh"]; h == nil || h.Linkname != "bin/busybox" || h.Typeflag != '1' {
		t.Errorf("bin/sh: %+v", h)
	}
	if h := files["bin/"]; h == nil {
		t.Errorf("bin/ missing: %v", files)
	}
	var again bytes.Buffer
	WriteOCIImages(&again, "amd64", imgs...)
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("WriteOCIImages is not deterministic")
	}
}

func TestCRIImagesTar(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go binary")
	}
	if !fileExists(BusyboxPath) {
		t.Skipf("%s missing (scripts/deps.sh cri)", BusyboxPath)
	}
	t.Setenv("ISOGUARD_CACHE", t.TempDir())
	p := CRIImagesTar(t)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	readTar(t, b)
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(tarBodies["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range index.Manifests {
		names = append(names, m.Annotations["io.containerd.image.name"])
	}
	if strings.Join(names, " ") != strings.Join(CRIImages(), " ") {
		t.Errorf("images %v, want %v", names, CRIImages())
	}
}
