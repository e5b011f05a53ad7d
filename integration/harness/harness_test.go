package harness

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

func readTar(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	files := map[string]*tar.Header{}
	bodies := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
		bodies[h.Name] = body
	}
	tarBodies = bodies
	return files
}

var tarBodies map[string][]byte

func TestWriteImage(t *testing.T) {
	var buf bytes.Buffer
	if err := writeImage(&buf, []byte("#!fake tool"), "amd64"); err != nil {
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
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != ImageRef {
		t.Fatalf("index.json: %s", outer["index.json"])
	}
	blobOf := func(d descriptor) []byte {
		b, ok := outer["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
		if !ok || int64(len(b)) != d.Size {
			t.Fatalf("blob %s missing or wrong size", d.Digest)
		}
		return b
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(blobOf(index.Manifests[0]), &manifest); err != nil {
		t.Fatal(err)
	}
	var config struct {
		Architecture string `json:"architecture"`
		Config       struct {
			Cmd []string `json:"Cmd"`
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(blobOf(manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	if strings.Join(config.Config.Cmd, " ") != "/bin/tool hello" || config.Architecture != "amd64" {
		t.Fatalf("config: %s", blobOf(manifest.Config))
	}
	if len(manifest.Layers) != 1 || config.RootFS.DiffIDs[0] != manifest.Layers[0].Digest {
		t.Fatalf("layers %v, diff ids %v", manifest.Layers, config.RootFS.DiffIDs)
	}
	layer := readTar(t, blobOf(manifest.Layers[0]))
	if h := layer["bin/tool"]; h == nil || h.Mode != 0o755 || string(tarBodies["bin/tool"]) != "#!fake tool" {
		t.Fatalf("bin/tool: %+v", h)
	}
	if h := layer["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Fatalf("tmp/: %+v", h)
	}
	if !strings.Contains(string(tarBodies["etc/passwd"]), "tenant:x:1000:1000:") {
		t.Fatalf("etc/passwd: %s", tarBodies["etc/passwd"])
	}
	if h := layer["bin/id"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "tool" {
		t.Fatalf("bin/id: %+v", h)
	}

	// Deterministic: the same tool gives the same tarball.
	var again bytes.Buffer
	writeImage(&again, []byte("#!fake tool"), "amd64")
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("writeImage is not deterministic")
	}
}

func TestConfigTOML(t *testing.T) {
	for version, want := range map[string][]string{
		"1.6": {"version = 2\n", `"io.containerd.grpc.v1.cri"`},
		"1.7": {"version = 2\n", `"io.containerd.grpc.v1.cri"`},
		"2.4": {"version = 3\n", `"io.containerd.cri.v1.images"`, `"io.containerd.cri.v1.runtime"`, `"io.containerd.nri.v1.nri"`},
	} {
		d := &Daemon{Version: version, Dir: "/tmp/ig-1", Root: "/tmp/ig-1/root", State: "/tmp/ig-1/state",
			Address: "/tmp/ig-1/c.sock", TTRPCAddress: "/tmp/ig-1/c.sock.ttrpc",
			opts: Options{ExtraConfig: "[plugins.\"x\"]\n  y = 1"}}
		cfg := d.configTOML()
		want = append(want, "root = \"/tmp/ig-1/root\"\n", "[grpc]\n  address = \"/tmp/ig-1/c.sock\"\n",
			"[ttrpc]\n  address = \"/tmp/ig-1/c.sock.ttrpc\"\n", "path = \"/tmp/ig-1/opt\"", "[plugins.\"x\"]\n  y = 1\n")
		for _, w := range want {
			if !strings.Contains(cfg, w) {
				t.Errorf("%s config lacks %q:\n%s", version, w, cfg)
			}
		}
		// Top-level keys must precede every table.
		if strings.Index(cfg, "disabled_plugins") > strings.Index(cfg, "[") {
			t.Errorf("%s: disabled_plugins after a table:\n%s", version, cfg)
		}
	}
}

func TestServerVersion(t *testing.T) {
	out := "Client:\n  Version:  1.7.35+unknown\n  Revision: \n  Go version: go1.26.8\n\nServer:\n  Version:  v2.4.2\n  Revision: \n  UUID: x\n"
	if got := serverVersion(out); got != "v2.4.2" {
		t.Fatalf("serverVersion = %q", got)
	}
}

func TestImageTarAndBuildBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go binaries")
	}
	t.Setenv("ISOGUARD_CACHE", t.TempDir())
	if p := ImageTar(t); !fileExists(p) || !strings.HasPrefix(p, Cache()) {
		t.Fatalf("ImageTar = %s", p)
	}
	tool := BuildBinary(t, "./integration/testimage")
	if tool != BuildBinary(t, "./integration/testimage") {
		t.Fatal("BuildBinary built twice")
	}
	out, err := exec.Command(tool, "hello").Output()
	if err != nil || string(out) != "hello from isoguard\n" {
		t.Fatalf("tool hello: %q, %v", out, err)
	}
	err = exec.Command(tool, "exit", "7").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Fatalf("tool exit 7: %v", err)
	}
}
