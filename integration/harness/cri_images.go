package harness

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The images of the CRI tier, built locally (no registry) by CRIImagesTar and imported into
// the k8s.io namespace of every CRI daemon. The stand-ins carry the names critest expects
// (cri-tools pkg/validate and pkg/framework), so its specs find them and never pull.
const (
	// CRIPauseImage is the pinned sandbox image: /pause (cri-standin) reaps children and
	// exits on SIGTERM/SIGINT.
	CRIPauseImage = "docker.io/isoguard/pause:cri"
	// CRIBusyboxImage is Debian's busybox-static with every applet hard-linked, /etc/passwd
	// with root, nobody, www-data and tenant (ImageTenantUID), critest's default test image.
	CRIBusyboxImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	// CRINginxImage stands in for critest's web server: /usr/sbin/nginx (cri-standin)
	// serves /www on :80 and writes /var/run/nginx.pid; busybox underneath.
	CRINginxImage = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	// CRIHttpdImage is the same server as /usr/sbin/httpd (logs "httpd: serving ...").
	CRIHttpdImage = "registry.k8s.io/e2e-test-images/httpd:2.4.39-4"
)

// CRIHostNetNginxImage is the nginx stand-in listening on critest's host-network port 12003.
var CRIHostNetNginxImage = "gcr.io/k8s-staging-cri-tools/hostnet-nginx-" + runtime.GOARCH + ":latest"

// CRIImages lists every image name in CRIImagesTar.
func CRIImages() []string {
	return []string{CRIPauseImage, CRIBusyboxImage, CRINginxImage, CRIHttpdImage, CRIHostNetNginxImage}
}

// BusyboxPath is where Debian's busybox-static puts its binary (scripts/deps.sh cri).
var BusyboxPath = "/bin/busybox"

// criImageFormat changes whenever the layout of the CRI images changes (part of the cache key).
const criImageFormat = "isoguard-cri-images/2"

const criStandinPkg = "./integration/cmd/cri-standin"

var criImagesTar struct {
	sync.Mutex
	path string
}

// CRIImagesTar returns the path of an OCI image-layout tarball holding CRIImages(), built
// from Debian's busybox-static (BusyboxPath) and cri-standin (go build, static) when the
// cache holds none for the current inputs. Cached under Cache()/criimages/ by content hash.
func CRIImagesTar(t testing.TB) string {
	t.Helper()
	criImagesTar.Lock()
	defer criImagesTar.Unlock()
	if criImagesTar.path != "" && fileExists(criImagesTar.path) && strings.HasPrefix(criImagesTar.path, Cache()) {
		return criImagesTar.path
	}
	p, err := buildCRIImagesTar()
	if err != nil {
		t.Fatalf("CRIImagesTar: %v", err)
	}
	criImagesTar.path = p
	return p
}

func buildCRIImagesTar() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	busybox, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return "", fmt.Errorf("busybox-static: %v (run `bash scripts/deps.sh cri`)", err)
	}
	srcKey, err := imageKey(filepath.Join(root, filepath.FromSlash(criStandinPkg)))
	if err != nil {
		return "", err
	}
	bbSum := sha256.Sum256(busybox)
	h := sha256.Sum256([]byte(criImageFormat + "\x00" + runtime.GOARCH + "\x00" + srcKey + "\x00" + hex.EncodeToString(bbSum[:])))
	dir := filepath.Join(Cache(), "criimages")
	final := filepath.Join(dir, hex.EncodeToString(h[:])[:24]+".tar")
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
	bin := filepath.Join(tmp, "cri-standin")
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + runtime.GOARCH}
	if err := goBuild(criStandinPkg, bin, env, "-trimpath", "-ldflags=-s -w"); err != nil {
		return "", err
	}
	standin, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	applets, err := busyboxApplets(BusyboxPath)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := WriteOCIImages(&buf, runtime.GOARCH, criImages(busybox, applets, standin)...); err != nil {
		return "", err
	}
	out := filepath.Join(tmp, "images.tar")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(out, final); err != nil {
		return "", err
	}
	return final, nil
}

// busyboxApplets returns the applets' install paths ("bin/sh", "usr/bin/env", ...) from
// `busybox --list-full`.
func busyboxApplets(bin string) ([]string, error) {
	out, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %v", bin, err)
	}
	var applets []string
	for _, l := range strings.Fields(string(out)) {
		l = strings.TrimPrefix(l, "/")
		if l != "" && l != "bin/busybox" {
			applets = append(applets, l)
		}
	}
	sort.Strings(applets)
	if len(applets) < 100 {
		return nil, fmt.Errorf("%s --list-full: only %d applets", bin, len(applets))
	}
	return applets, nil
}

// pgrepScript stands in for busybox's pgrep: pgrep NAME prints the pids, one a line.
const pgrepScript = `#!/bin/sh
# pgrep stand-in of the isoguard CRI images (Debian's busybox-static has no pgrep).
pids=$(pidof "$1") || exit 1
for p in $pids; do echo "$p"; done
`

// ipcsScript stands in for ipcs -m: the System V shared memory segments of the IPC namespace.
const ipcsScript = `#!/bin/sh
# ipcs -m stand-in of the isoguard CRI images (Debian's busybox-static has no ipcs).
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch"
tail -n +2 /proc/sysvipc/shm | while read key shmid perms size cpid lpid nattch uid rest; do
	echo "$key $shmid $uid $perms $size $nattch"
done
`

const criImagePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// criImages are the images of CRIImagesTar: a busybox layer, a web stand-in layer on top
// of it, and the sandbox image's own layer.
func criImages(busybox []byte, applets []string, standin []byte) []OCIImage {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\n"+
		"www-data:x:33:33:www-data:/var/www:/bin/false\n"+
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"+
		"tenant:x:%d:%d:tenant:/home/tenant:/bin/sh\n", ImageTenantUID, ImageTenantGID)
	group := fmt.Sprintf("root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\ntenant:x:%d:\n", ImageTenantGID)
	base := ImageLayer{
		DirEntry("bin", 0o755),
		FileEntry("bin/busybox", 0o755, busybox),
	}
	dirs := map[string]bool{"bin": true}
	for _, a := range applets {
		for d := filepath.Dir(a); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var dirList []string
	for d := range dirs {
		if d != "bin" {
			dirList = append(dirList, d)
		}
	}
	sort.Strings(dirList) // parents sort before their children
	for _, d := range dirList {
		base = append(base, DirEntry(d, 0o755))
	}
	for _, a := range applets {
		base = append(base, HardlinkEntry(a, "bin/busybox"))
	}
	// Applets critest's specs use that Debian's busybox build lacks, as scripts.
	for _, a := range []string{"bin/pgrep", "usr/bin/ipcs"} {
		if slices.Contains(applets, a) {
			continue
		}
		script := pgrepScript
		if strings.HasSuffix(a, "ipcs") {
			script = ipcsScript
		}
		base = append(base, FileEntry(a, 0o755, []byte(script)))
	}
	home := DirEntry("home/tenant", 0o755)
	home.UID, home.GID = ImageTenantUID, ImageTenantGID
	base = append(base,
		DirEntry("dev", 0o755),
		DirEntry("etc", 0o755),
		FileEntry("etc/passwd", 0o644, []byte(passwd)),
		FileEntry("etc/group", 0o644, []byte(group)),
		DirEntry("home", 0o755),
		home,
		DirEntry("proc", 0o555),
		DirEntry("root", 0o700),
		DirEntry("run", 0o755),
		DirEntry("sys", 0o555),
		DirEntry("tmp", 0o1777),
		DirEntry("var", 0o755),
		SymlinkEntry("var/run", "../run"),
		DirEntry("var/www", 0o755),
	)
	web := ImageLayer{
		DirEntry("usr", 0o755),
		DirEntry("usr/local", 0o755),
		DirEntry("usr/local/bin", 0o755),
		FileEntry("usr/local/bin/cri-standin", 0o755, standin),
		DirEntry("usr/sbin", 0o755),
		SymlinkEntry("usr/sbin/nginx", "../local/bin/cri-standin"),
		SymlinkEntry("usr/sbin/httpd", "../local/bin/cri-standin"),
		DirEntry("www", 0o755),
		FileEntry("www/index.html", 0o644, []byte("<html><body>isoguard CRI stand-in web server</body></html>\n")),
	}
	pause := ImageLayer{FileEntry("pause", 0o755, standin)}
	webImage := func(name, server string, port int) OCIImage {
		return OCIImage{Name: name, Layers: []ImageLayer{base, web}, Config: ImageConfig{
			Entrypoint: []string{"/usr/sbin/" + server},
			// Ignored by cri-standin; critest's ContainerPID spec looks for real nginx's
			// "master process" in the command line of the container's pid 1.
			Cmd:        []string{server + ": master process (isoguard stand-in)"},
			Env:        []string{criImagePath, fmt.Sprintf("WEB_PORT=%d", port), "WEB_ROOT=/www", "PID_FILE=/var/run/" + server + ".pid"},
			WorkingDir: "/",
		}}
	}
	return []OCIImage{
		{Name: CRIPauseImage, Layers: []ImageLayer{pause}, Config: ImageConfig{Entrypoint: []string{"/pause"}, WorkingDir: "/"}},
		{Name: CRIBusyboxImage, Layers: []ImageLayer{base}, Config: ImageConfig{Cmd: []string{"sh"}, Env: []string{criImagePath}, WorkingDir: "/"}},
		webImage(CRINginxImage, "nginx", 80),
		webImage(CRIHttpdImage, "httpd", 80),
		webImage(CRIHostNetNginxImage, "nginx", 12003),
	}
}
