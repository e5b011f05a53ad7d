package policy

import (
	"path"
	"strings"
	"testing"
)

// asciiLower folds ASCII letters only, byte by byte, as foldEqual does.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// swapCase swaps the case of ASCII letters, byte by byte.
func swapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func sameHostPath(platform Platform, a, b hostPath) bool {
	eq := foldEqual
	if platform == Linux {
		eq = func(x, y string) bool { return x == y }
	}
	if !eq(a.root, b.root) || len(a.elems) != len(b.elems) {
		return false
	}
	for i := range a.elems {
		if !eq(a.elems[i], b.elems[i]) {
			return false
		}
	}
	return true
}

// spellings are other ways of writing the normalised Windows path n (n.String(Windows)):
// "/" separators, swapped ASCII case, the verbatim and device prefixes, a trailing
// separator, "." and "x\.." elements. Windows reads each as the same path.
func spellings(n hostPath) []string {
	s := n.String(Windows)
	out := []string{strings.ReplaceAll(s, `\`, "/"), swapCase(s), s + `\`, s + `\.`, s + `\x\..`, s + `\\x\.\..\`}
	if strings.HasPrefix(n.root, `\\`) {
		out = append(out, `\\?\UNC\`+s[2:], `\\.\UNC\`+s[2:], `\??\UNC\`+s[2:])
	} else {
		out = append(out, `\\?\`+s, `\\.\`+s, `\??\`+s, `\\?\`+swapCase(s))
	}
	return out
}

// FuzzHostPath: the host path normaliser (parseWindowsPath, parseLinuxPath) and the prefix
// matching of untrusted.hostpath (compilePrefix, pathPrefix.match). Properties, Windows:
// no panic; an error only for a path (pipes and pseudo-sources are classified, not refused
// here); a normalised path has a canonical root and elements that are none of "", ".", "..",
// carry no separator and pass checkWindowsElem; normalising is idempotent; every other
// spelling of a normalised path (slashes, ASCII case, \\?\ \\.\ \??\ and \\?\UNC\
// prefixes, trailing separators, "." and "x\.." elements) normalises to the same path; a
// drive path normalises as path.Clean reads it; "\.." removes exactly one element and never
// climbs above the root. Linux: the normalised path is path.Clean's, ".." is refused.
// Matching: a path matches a prefix exactly when its normalised string lies below the
// prefix's with the placeholder values substituted, and never through a placeholder value
// that is not one safe path element; every spelling of a matching path matches, a child
// matches, and going up ("\..") out of the prefix does not:
//
//	go test ./policy -run '^$' -fuzz '^FuzzHostPath$' -fuzztime 1000000x
func FuzzHostPath(f *testing.F) {
	for _, s := range []string{
		`C:\var\lib`, `c:/var//lib/`, `C:\var\.\lib\x\..`, `C:\`, `\\?\C:\var\lib`, `\\.\C:\var\lib\`, `\??\C:\var`,
		`\\?\UNC\srv\share\a`, `//srv/share/a/../b`, `\\.\pipe\x`, `//./pipe/x`, `\\host\ipc$`, `sandbox:///x`, `C://x`,
		"C:\\a\x00b", `C:x`, `\x`, `x\y`, `C:\..`, `\\?\C:\a\..\b`, `\\?\C:\a\\b`, `\\?\C:\a/b`, `\\.\PhysicalDrive0`,
		`\\?\Volume{x}\a`, `\\srv\..\x`, `C:\a\b.`, `C:\a\b \c`, `C:\a\f:stream`, `C:\a\nul`, `C:\a\COM1.txt`, `C:\a\LPT²`,
		`C:\var\lib\kubelet\pods\` + podUID + `\volumes\kubernetes.io~projected\kube-api-access-x7k2p`,
		`C:\var\lib\kubelet\pods\` + podUID + `\..\` + otherPodUID + `\volumes`,
		`C:\ProgramData\containerd\root\io.containerd.grpc.v1.cri\containers\` + containerID + `\volumes\PROGRA~1`,
	} {
		f.Add(false, s, `C:\var\lib\kubelet\pods\{podUID}\`, podUID)
	}
	f.Add(false, `\\SRV\Share\x\y`, `\\srv\share\x`, "")
	f.Add(false, `C:\data\`+"\u212a", `C:\data\K\`, "")
	f.Add(false, `C:\var\lib\kubelet\pods\..`, `C:\var\lib\kubelet\pods\{podUID}\`, "..")
	f.Add(false, `C:\ProgramData\containerd\root\io.containerd.grpc.v1.cri\containers\c1\volumes\v`, `C:\ProgramData\containerd\root\io.containerd.grpc.v1.cri\containers\{containerID}\volumes\`, podUID)
	for _, s := range []string{
		"/var/lib/kubelet/pods/" + podUID + "/volumes/kubernetes.io~projected/x", "//var/./lib/", "/", "", "var", "/var/../etc", "/a\x00", `/C:\x`,
		"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/sb1/shm", "/var/lib/kubelet/pods/" + podUID + "/../" + otherPodUID,
	} {
		f.Add(true, s, "/var/lib/kubelet/pods/{podUID}/", podUID)
	}
	f.Add(true, "/run/x/sb1/shm", "/run/x/{sandboxID}/", "")
	f.Add(true, "/c/c1/volumesx", "/c/{containerID}/volumes/", "")

	f.Fuzz(func(t *testing.T, linux bool, s, prefix, uid string) {
		platform := Windows
		if linux {
			platform = Linux
		}
		p, kind, err := parseHostPath(platform, s)
		if err != nil {
			if kind != kindPath {
				t.Fatalf("%q: an error (%v) for kind %d", s, err, kind)
			}
			if linux {
				checkLinuxRefusal(t, s, err)
			}
			return
		}
		if kind != kindPath {
			if linux {
				t.Fatalf("%q: Linux kind %d", s, kind)
			}
			return
		}
		checkNormalised(t, platform, s, p)

		ph := placeholders{podUID: uid, sandboxID: "sb1", containerID: "c1"}
		pp, err := compilePrefix(platform, prefix)
		if err != nil {
			return
		}
		if len(pp.elems) == 0 {
			t.Fatalf("prefix %q compiled to a root", prefix)
		}
		// The prefix once more from its normalised form.
		pn := hostPath{root: pp.root, elems: pp.elems}
		if pp2, err := compilePrefix(platform, pn.String(platform)); err != nil || !sameHostPath(platform, hostPath{root: pp2.root, elems: pp2.elems}, pn) {
			t.Fatalf("prefix %q normalised to %q, which compiles to %+v (%v)", prefix, pn.String(platform), pp2, err)
		}
		matched := pp.match(platform, p, ph)

		// The string view: the normalised path lies below the prefix with its values.
		sep, fold := `\`, asciiLower
		if linux {
			sep, fold = "/", func(s string) string { return s }
		}
		safe := true
		sub := make([]string, len(pp.elems))
		for i, e := range pp.elems {
			sub[i] = e
			if v, isPh := ph.value(e); isPh {
				sub[i] = v
				safe = safe && safeElem(v)
			}
		}
		n := p.String(platform)
		below := strings.HasPrefix(fold(n+sep), fold(hostPath{root: pp.root, elems: sub}.String(platform)+sep))
		if linux && n == "/" {
			below = false
		}
		if matched && (!below || !safe) {
			t.Fatalf("%q (%q) matches prefix %q (%+v) but does not lie below it (or only through an unsafe value %q)", s, n, prefix, pp, uid)
		}
		if below && safe && !matched {
			t.Fatalf("%q (%q) lies below prefix %q (%+v) but does not match", s, n, prefix, pp)
		}
		if !matched {
			return
		}
		// A child matches; going up out of the prefix does not.
		child, err := parseHostPathOK(platform, n+sep+"child")
		if err != nil || !pp.match(platform, child, ph) {
			t.Fatalf("%q matches prefix %q, its child %+v does not (%v)", n, prefix, child, err)
		}
		if !linux {
			up := n + strings.Repeat(`\..`, len(p.elems)-len(pp.elems)+1)
			if q, _, err := parseWindowsPath(up); err == nil && pp.match(platform, q, ph) {
				t.Fatalf("%q climbs out of prefix %q but still matches as %q", up, prefix, q.String(platform))
			}
			for _, v := range spellings(p) {
				q, kind, err := parseWindowsPath(v)
				if err != nil || kind != kindPath || !pp.match(platform, q, ph) {
					t.Fatalf("%q matches prefix %q, its spelling %q does not (%q, %v)", n, prefix, v, q.String(platform), err)
				}
			}
		}
	})
}

func parseHostPathOK(platform Platform, s string) (hostPath, error) {
	p, _, err := parseHostPath(platform, s)
	return p, err
}

// checkLinuxRefusal: parseLinuxPath refuses exactly empty, relative, NUL and ".." paths.
func checkLinuxRefusal(t *testing.T, s string, err error) {
	t.Helper()
	dotdot := false
	for _, e := range strings.Split(s, "/") {
		dotdot = dotdot || e == ".."
	}
	if s != "" && s[0] == '/' && !strings.Contains(s, "\x00") && !dotdot {
		t.Fatalf("%q refused: %v", s, err)
	}
}

// checkNormalised checks a normalised path p of s.
func checkNormalised(t *testing.T, platform Platform, s string, p hostPath) {
	t.Helper()
	n := p.String(platform)
	for _, e := range p.elems {
		if e == "" || e == "." || e == ".." || strings.ContainsAny(e, "/\x00") || platform == Windows && strings.Contains(e, `\`) {
			t.Fatalf("%q: element %q in %q", s, e, n)
		}
		if platform == Windows {
			if err := checkWindowsElem(e); err != nil {
				t.Fatalf("%q: element %q of %q: %v", s, e, n, err)
			}
		}
	}
	// Idempotent.
	q, kind, err := parseHostPath(platform, n)
	if err != nil || kind != kindPath || q.root != p.root || strings.Join(q.elems, "\x00") != strings.Join(p.elems, "\x00") {
		t.Fatalf("%q normalised to %q, which normalises to %q (%v)", s, n, q.String(platform), err)
	}
	if platform == Linux {
		if p.root != "/" || n != path.Clean(s) {
			t.Fatalf("%q normalised to %q, path.Clean says %q", s, n, path.Clean(s))
		}
		return
	}
	switch {
	case len(p.root) == 2 && isLetter(p.root[0]) && p.root[1] == ':' && p.root == strings.ToUpper(p.root):
		// A drive path that is not a device path reads as path.Clean reads it.
		if t2 := strings.ReplaceAll(s, "/", `\`); isDriveAbs(t2) {
			if want := path.Clean(strings.ReplaceAll(t2[2:], `\`, "/")); "/"+strings.Join(p.elems, "/") != want {
				t.Fatalf("%q normalised to %q, path.Clean reads %q", s, n, want)
			}
		}
	case strings.HasPrefix(p.root, `\\`):
		server, share, ok := strings.Cut(p.root[2:], `\`)
		if !ok || server == "" || share == "" || strings.ContainsAny(share, `\/`) || strings.Contains(server, "/") {
			t.Fatalf("%q: UNC root %q", s, p.root)
		}
	default:
		t.Fatalf("%q: root %q", s, p.root)
	}
	// "\.." removes one element, and never climbs above the root.
	up, _, err := parseWindowsPath(n + `\..`)
	if len(p.elems) == 0 {
		if err == nil {
			t.Fatalf("%q: %q climbs above the root to %q", s, n+`\..`, up.String(platform))
		}
	} else if err != nil || up.root != p.root || strings.Join(up.elems, "\x00") != strings.Join(p.elems[:len(p.elems)-1], "\x00") {
		t.Fatalf("%q: %q normalised to %q (%v)", s, n+`\..`, up.String(platform), err)
	}
	for _, v := range spellings(p) {
		q, kind, err := parseWindowsPath(v)
		if err != nil || kind != kindPath || !sameHostPath(platform, p, q) {
			t.Fatalf("%q normalised to %q; its spelling %q normalises to %q (kind %d, %v)", s, n, v, q.String(platform), kind, err)
		}
	}
}
