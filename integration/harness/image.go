package harness

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// ImageRef is the name the test image is imported under.
const ImageRef = "docker.io/isoguard/test:latest"

// ImageTool is the path of the multi-call test binary inside the image.
const ImageTool = "/bin/tool"

// ImageTenantUID and ImageTenantGID are the ids of the image's unprivileged user "tenant".
const (
	ImageTenantUID = 1000
	ImageTenantGID = 1000
)

// ImageToolCommands are the subcommands of /bin/tool; each also exists as a /bin/NAME link.
var ImageToolCommands = []string{"hello", "sleep", "id", "cat", "ls", "write", "exit", "env"}

// imageFormat changes whenever the layout written by writeImage changes (it is part of the cache key).
const imageFormat = "isoguard-test-image/1"

// The test binary source, relative to the module root.
const testImagePkg = "./integration/testimage"

var imageTar struct {
	sync.Mutex
	path string
}

// ImageTar returns the path of the test image as an OCI image-layout tarball, building it
// (go build of ./integration/testimage, static, for linux/GOARCH) when the cache holds none
// for the current source. The result is cached under Cache()/testimage/ by content hash.
func ImageTar(t testing.TB) string {
	t.Helper()
	imageTar.Lock()
	defer imageTar.Unlock()
	// The cache may have moved (ISOGUARD_CACHE changed) or been removed since: re-check.
	if imageTar.path != "" && fileExists(imageTar.path) && strings.HasPrefix(imageTar.path, Cache()) {
		return imageTar.path
	}
	p, err := buildImageTar()
	if err != nil {
		t.Fatalf("ImageTar: %v", err)
	}
	imageTar.path = p
	return p
}

// Image is ImageTar.
func Image(t testing.TB) string { t.Helper(); return ImageTar(t) }

// BuildImageTar is ImageTar for programs (the demo): it returns the tarball's path.
func BuildImageTar() (string, error) { return buildImageTar() }

func buildImageTar() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	key, err := imageKey(filepath.Join(root, filepath.FromSlash(testImagePkg)))
	if err != nil {
		return "", err
	}
	dir := filepath.Join(Cache(), "testimage")
	final := filepath.Join(dir, key+".tar")
	if fileExists(final) {
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "tool")
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + runtime.GOARCH}
	if err := goBuild(testImagePkg, bin, env, "-trimpath", "-ldflags=-s -w"); err != nil {
		return "", err
	}
	tool, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := writeImage(&buf, tool, runtime.GOARCH); err != nil {
		return "", err
	}
	out := filepath.Join(tmp, "image.tar")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	// Atomic: a concurrent builder of the same key writes the same content.
	if err := os.Rename(out, final); err != nil {
		return "", err
	}
	return final, nil
}

// imageKey hashes everything the image depends on: the layout version, the architecture
// and the test binary's source files.
func imageKey(srcDir string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", imageFormat, runtime.GOARCH)
	files, err := filepath.Glob(filepath.Join(srcDir, "*.go"))
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no Go files in %s", srcDir)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(f), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

var imageTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	body     []byte
	link     string
}

func writeTar(buf *bytes.Buffer, entries []tarEntry) error {
	tw := tar.NewWriter(buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Typeflag: e.typ,
			Name:     e.name,
			Linkname: e.link,
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			Size:     int64(len(e.body)),
			ModTime:  imageTime,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(e.body); err != nil {
			return err
		}
	}
	return tw.Close()
}

// layerTar is the image's single, uncompressed layer.
func layerTar(tool []byte) ([]byte, error) {
	dir := func(name string, mode int64, id int) tarEntry {
		return tarEntry{name: name, typ: tar.TypeDir, mode: mode, uid: id, gid: id}
	}
	file := func(name string, mode int64, body string) tarEntry {
		return tarEntry{name: name, typ: tar.TypeReg, mode: mode, body: []byte(body)}
	}
	entries := []tarEntry{
		dir("bin/", 0o755, 0),
		{name: "bin/tool", typ: tar.TypeReg, mode: 0o755, body: tool},
	}
	for _, c := range ImageToolCommands {
		entries = append(entries, tarEntry{name: "bin/" + c, typ: tar.TypeSymlink, mode: 0o777, link: "tool"})
	}
	entries = append(entries,
		dir("dev/", 0o755, 0),
		dir("etc/", 0o755, 0),
		file("etc/passwd", 0o644, fmt.Sprintf("root:x:0:0:root:/root:/bin/tool\ntenant:x:%d:%d:tenant:/home/tenant:/bin/tool\n", ImageTenantUID, ImageTenantGID)),
		file("etc/group", 0o644, fmt.Sprintf("root:x:0:\ntenant:x:%d:\n", ImageTenantGID)),
		file("etc/hostname", 0o644, "isoguard-test\n"),
		dir("home/", 0o755, 0),
		dir("home/tenant/", 0o755, ImageTenantUID),
		dir("proc/", 0o555, 0),
		dir("root/", 0o700, 0),
		dir("sys/", 0o555, 0),
		dir("tmp/", 0o1777, 0),
	)
	var buf bytes.Buffer
	if err := writeTar(&buf, entries); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

func blob(mediaType string, b []byte) (descriptor, string) {
	sum := sha256.Sum256(b)
	hexSum := hex.EncodeToString(sum[:])
	return descriptor{MediaType: mediaType, Digest: "sha256:" + hexSum, Size: int64(len(b))}, "blobs/sha256/" + hexSum
}

// writeImage writes an OCI image layout tarball holding one image, ImageRef, whose only
// layer carries tool as /bin/tool.
func writeImage(buf *bytes.Buffer, tool []byte, arch string) error {
	layer, err := layerTar(tool)
	if err != nil {
		return err
	}
	layerDesc, layerPath := blob(mediaTypeLayer, layer)

	config, err := json.Marshal(map[string]any{
		"created":      imageTime.Format(time.RFC3339),
		"architecture": arch,
		"os":           "linux",
		"config": map[string]any{
			"Env":        []string{"PATH=/bin"},
			"Cmd":        []string{ImageTool, "hello"},
			"WorkingDir": "/",
		},
		"rootfs": map[string]any{
			"type":     "layers",
			"diff_ids": []string{layerDesc.Digest}, // uncompressed: diff id = layer digest
		},
		"history": []map[string]any{{"created": imageTime.Format(time.RFC3339), "created_by": "isoguard integration harness"}},
	})
	if err != nil {
		return err
	}
	configDesc, configPath := blob(mediaTypeConfig, config)

	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeManifest,
		"config":        configDesc,
		"layers":        []descriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	manifestDesc, manifestPath := blob(mediaTypeManifest, manifest)
	manifestDesc.Platform = &platform{Architecture: arch, OS: "linux"}
	manifestDesc.Annotations = map[string]string{
		"io.containerd.image.name":          ImageRef,
		"org.opencontainers.image.ref.name": "latest",
	}

	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeIndex,
		"manifests":     []descriptor{manifestDesc},
	})
	if err != nil {
		return err
	}
	return writeTar(buf, []tarEntry{
		{name: "oci-layout", typ: tar.TypeReg, mode: 0o644, body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{name: "index.json", typ: tar.TypeReg, mode: 0o644, body: index},
		{name: "blobs/", typ: tar.TypeDir, mode: 0o755},
		{name: "blobs/sha256/", typ: tar.TypeDir, mode: 0o755},
		{name: layerPath, typ: tar.TypeReg, mode: 0o644, body: layer},
		{name: configPath, typ: tar.TypeReg, mode: 0o644, body: config},
		{name: manifestPath, typ: tar.TypeReg, mode: 0o644, body: manifest},
	})
}
