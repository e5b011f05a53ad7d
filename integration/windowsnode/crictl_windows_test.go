//go:build windows && functional

package windowsnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

// node is the node under test, from the environment (doc.go).
type node struct {
	crictl      string
	endpoint    string
	handler     string
	image       string
	untrustedNS string
	trustedNS   string
	auditLog    string
}

var (
	nodeOnce sync.Once
	theNode  node
	nodeErr  error
)

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// nanoserverTags maps Windows Server builds to the nanoserver tag that runs process
// isolated on them (Hyper-V isolation runs older builds too).
var nanoserverTags = map[uint32]string{
	17763: "ltsc2019",
	20348: "ltsc2022",
	26100: "ltsc2025",
}

// testNode checks the prerequisites once: crictl answers, the image is present (pulled if
// not). A missing prerequisite fails every test with the same message.
func testNode(t *testing.T) node {
	t.Helper()
	nodeOnce.Do(func() {
		n := node{
			crictl:      getenv("ISOGUARD_TEST_CRICTL", "crictl"),
			endpoint:    getenv("CONTAINER_RUNTIME_ENDPOINT", "npipe:////./pipe/containerd-containerd"),
			handler:     getenv("ISOGUARD_TEST_HANDLER", "isoguard"),
			image:       os.Getenv("ISOGUARD_TEST_IMAGE"),
			untrustedNS: getenv("ISOGUARD_TEST_UNTRUSTED_NAMESPACE", "isoguard-e2e-tenant"),
			trustedNS:   getenv("ISOGUARD_TEST_TRUSTED_NAMESPACE", "kube-system"),
			auditLog:    getenv("ISOGUARD_TEST_AUDIT_LOG", filepath.Join(getenv("ProgramData", `C:\ProgramData`), "isoguard", "audit", "audit.log")),
		}
		if n.image == "" {
			build := windows.RtlGetVersion().BuildNumber
			tag, ok := nanoserverTags[build]
			if !ok {
				nodeErr = fmt.Errorf("no nanoserver tag known for Windows build %d: set ISOGUARD_TEST_IMAGE", build)
				return
			}
			n.image = "mcr.microsoft.com/windows/nanoserver:" + tag
		}
		if _, err := exec.LookPath(n.crictl); err != nil {
			nodeErr = fmt.Errorf("crictl not found (%v): install it or set ISOGUARD_TEST_CRICTL", err)
			return
		}
		if out, err := n.run(context.Background(), "version"); err != nil {
			nodeErr = fmt.Errorf("crictl cannot reach containerd at %s (set CONTAINER_RUNTIME_ENDPOINT): %v\n%s", n.endpoint, err, out)
			return
		}
		if _, err := n.run(context.Background(), "inspecti", n.image); err != nil {
			if out, err := n.run(context.Background(), "pull", n.image); err != nil {
				nodeErr = fmt.Errorf("pull %s: %v\n%s", n.image, err, out)
				return
			}
		}
		theNode = n
	})
	if nodeErr != nil {
		t.Fatal(nodeErr)
	}
	return theNode
}

// run runs crictl against the node's endpoint and returns its combined output.
func (n node) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	full := append([]string{"--runtime-endpoint", n.endpoint, "--image-endpoint", n.endpoint, "--timeout", "5m"}, args...)
	cmd := exec.CommandContext(ctx, n.crictl, full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func (n node) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := n.run(context.Background(), args...)
	if err != nil {
		t.Fatalf("crictl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeJSON writes v as a crictl config file (CRI field names in snake case).
func writeJSON(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pod is a running pod sandbox created by the test.
type pod struct {
	ID     string
	Config string // its config file, which crictl create needs again
	LogDir string
}

// runPod starts a pod sandbox in namespace through handler; it is removed at cleanup.
func (n node) runPod(t *testing.T, namespace, handler string) pod {
	t.Helper()
	name := "isoguard-e2e-" + randomID()
	logDir := t.TempDir()
	cfg := writeJSON(t, "pod.json", map[string]any{
		"metadata": map[string]any{
			"name":      name,
			"namespace": namespace,
			"uid":       randomID() + randomID(),
			"attempt":   0,
		},
		"log_directory": logDir,
	})
	id := n.must(t, "runp", "--runtime", handler, cfg)
	t.Cleanup(func() {
		ctx := context.Background()
		if out, err := n.run(ctx, "stopp", id); err != nil {
			t.Logf("crictl stopp %s: %v\n%s", id, err, out)
		}
		if out, err := n.run(ctx, "rmp", "--force", id); err != nil {
			t.Logf("crictl rmp %s: %v\n%s", id, err, out)
		}
	})
	t.Logf("pod %s (%s/%s, handler %s)", id, namespace, name, handler)
	return pod{ID: id, Config: cfg, LogDir: logDir}
}

// container describes a workload container.
type container struct {
	User    string // windows.security_context.run_as_username; "" = the image's
	Command []string
	Mounts  []map[string]any
}

// startContainer creates and starts a container in p. It returns the container id and the
// error of the first crictl step that failed, with crictl's output.
func (n node) startContainer(t *testing.T, p pod, c container) (string, error) {
	t.Helper()
	cfg := map[string]any{
		"metadata": map[string]any{"name": "c" + randomID()},
		"image":    map[string]any{"image": n.image},
		"command":  c.Command,
		"log_path": "c.log",
	}
	if c.User != "" {
		cfg["windows"] = map[string]any{"security_context": map[string]any{"run_as_username": c.User}}
	}
	if len(c.Mounts) > 0 {
		cfg["mounts"] = c.Mounts
	}
	path := writeJSON(t, "container.json", cfg)
	out, err := n.run(context.Background(), "create", p.ID, path, p.Config)
	if err != nil {
		return "", fmt.Errorf("crictl create: %v: %s", err, out)
	}
	id := out
	t.Cleanup(func() {
		if out, err := n.run(context.Background(), "rm", "--force", id); err != nil {
			t.Logf("crictl rm %s: %v\n%s", id, err, out)
		}
	})
	if out, err := n.run(context.Background(), "start", id); err != nil {
		return id, fmt.Errorf("crictl start: %v: %s", err, out)
	}
	return id, nil
}

// firstLogLine waits for the container's first line of output.
func (n node) firstLogLine(t *testing.T, id string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := n.run(context.Background(), "logs", id)
		if err == nil {
			if line, _, _ := strings.Cut(strings.TrimSpace(out), "\n"); line != "" {
				return strings.TrimSpace(line)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s printed nothing within 2 minutes (crictl logs: %v %s)", id, err, out)
		}
		time.Sleep(2 * time.Second)
	}
}

// runtimeOptions returns the CRI runtime options containerd reports for handler
// (`crictl info`: config.containerd.runtimes.<handler>.options), nil if it reports none.
func (n node) runtimeOptions(t *testing.T, handler string) map[string]any {
	t.Helper()
	var info map[string]any
	if err := json.Unmarshal([]byte(n.must(t, "info")), &info); err != nil {
		t.Fatalf("crictl info: %v", err)
	}
	cfg := info["config"]
	if s, ok := cfg.(string); ok { // some crictl versions print the raw JSON string
		_ = json.Unmarshal([]byte(s), &cfg)
	}
	get := func(v any, key string) any {
		if m, ok := v.(map[string]any); ok {
			return m[key]
		}
		return nil
	}
	rt := get(get(get(cfg, "containerd"), "runtimes"), handler)
	if rt == nil {
		t.Fatalf("crictl info: containerd has no runtime handler %q (is isoguard installed? set ISOGUARD_TEST_HANDLER)", handler)
	}
	opts, _ := get(rt, "options").(map[string]any)
	return opts
}
