package policy

import (
	"fmt"
	"strings"
)

// Host path handling for the mount rules. Everything here is lexical: the policy cannot
// touch the file system, so it normalises a path the way Windows (Win32 path
// normalisation) or Linux would read it, and refuses every form whose meaning depends on
// the file system or is ambiguous. A refusal only ever makes the policy stricter.

// pathKind is what a mount source string denotes.
type pathKind int

const (
	kindPath   pathKind = iota // a host file system path (drive, UNC share or Linux path)
	kindPipe                   // a Windows named pipe (\\.\pipe\..., \\server\pipe\..., IPC$)
	kindScheme                 // an hcsshim pseudo-source: sandbox://, sandbox-tmp://, uvm://, hugepages://, blockdev://
)

// Placeholders allowed as whole elements of mounts.allowedHostPaths entries.
const (
	phPodUID      = "{podUID}"
	phSandboxID   = "{sandboxID}"
	phContainerID = "{containerID}"
)

// hostPath is a normalised absolute host path.
type hostPath struct {
	// root: Windows "C:" (upper-case drive) or `\\server\share`; Linux "/". Compared
	// ASCII case-insensitively on Windows.
	root string
	// elems are the path's elements below root, "." and ".." resolved, original case.
	elems []string
}

// String renders the normalised path.
func (p hostPath) String(platform Platform) string {
	if platform == Linux {
		return "/" + strings.Join(p.elems, "/")
	}
	return p.root + `\` + strings.Join(p.elems, `\`)
}

// parseHostPath classifies and normalises a mount source of platform.
func parseHostPath(platform Platform, s string) (hostPath, pathKind, error) {
	if platform == Linux {
		p, err := parseLinuxPath(s)
		return p, kindPath, err
	}
	return parseWindowsPath(s)
}

// parseLinuxPath: absolute, no NUL, no ".." element (a ".." after a symbolic link does not
// lead where it lexically seems to, and the policy cannot resolve links); "." elements,
// repeated and trailing slashes are dropped.
func parseLinuxPath(s string) (hostPath, error) {
	if s == "" {
		return hostPath{}, fmt.Errorf("empty path")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return hostPath{}, fmt.Errorf("path contains a NUL byte")
	}
	if s[0] != '/' {
		return hostPath{}, fmt.Errorf("path %s is not absolute", s)
	}
	p := hostPath{root: "/", elems: make([]string, 0, strings.Count(s, "/"))}
	for e := range strings.SplitSeq(s[1:], "/") {
		switch e {
		case "", ".":
			continue
		case "..":
			return hostPath{}, fmt.Errorf("path %s has a \"..\" element", s)
		}
		p.elems = append(p.elems, e)
	}
	return p, nil
}

// schemeLen returns the length of a "scheme://" prefix (scheme of two or more characters,
// so a drive letter followed by "//" is not one), or 0.
func schemeLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case c == ':' && i >= 2 && strings.HasPrefix(s[i:], "://"):
			return i + 3
		default:
			return 0
		}
	}
	return 0
}

// parseWindowsPath normalises a Windows path the way Win32 would, refusing what it cannot
// read with certainty:
//   - `/` and `\` are both separators; runs of separators count as one;
//   - device and verbatim prefixes \\?\, \\.\ and \??\ are understood: \\?\C:\x is C:\x,
//     \\?\UNC\srv\share\x is \\srv\share\x, \\.\pipe\x is a named pipe; any other device
//     path (\\.\PhysicalDrive0, \\?\Volume{...}\, \\?\GLOBALROOT\...) is refused. Below
//     such a prefix Windows does not normalise, so "." / ".." / "/" / empty elements are
//     refused there;
//   - UNC paths \\server\share\...: the share "pipe" or "IPC$" is a named pipe;
//   - drive-relative (C:x), rooted (\x) and relative paths are refused (their meaning
//     depends on a current directory);
//   - "." is dropped, ".." removes the previous element and may not climb above the root;
//   - an element may not contain < > : " | ? * or control characters (":" would name an
//     alternate data stream), end in "." or " " (Win32 strips those, so the element would
//     not be what it looks like) or be a reserved DOS device name (CON, NUL, COM1, ...,
//     also with an extension).
//
// Case is kept; comparisons fold ASCII case (foldEqual).
func parseWindowsPath(s string) (hostPath, pathKind, error) {
	if s == "" {
		return hostPath{}, kindPath, fmt.Errorf("empty path")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return hostPath{}, kindPath, fmt.Errorf("path %q contains a control character", s)
		}
	}
	if schemeLen(s) > 0 {
		return hostPath{}, kindScheme, nil
	}
	t := strings.ReplaceAll(s, "/", `\`)
	var (
		rest     string
		verbatim bool
		p        hostPath
	)
	switch {
	case strings.HasPrefix(t, `\\?\`) || strings.HasPrefix(t, `\\.\`) || strings.HasPrefix(t, `\??\`):
		verbatim = true
		dev := t[4:]
		// A pipe in any spelling is a pipe (for untrusted.named-pipe), "/" or not.
		if foldEqual(dev, "pipe") || hasPrefixFold(dev, `pipe\`) {
			return hostPath{}, kindPipe, nil
		}
		if strings.IndexByte(s[4:], '/') >= 0 {
			return hostPath{}, kindPath, fmt.Errorf("device path %s contains \"/\"", s)
		}
		switch {
		case hasPrefixFold(dev, `UNC\`):
			return parseUNC(s, dev[4:], true)
		case isDriveAbs(dev):
			p.root = strings.ToUpper(dev[:2])
			rest = dev[2:]
		default:
			return hostPath{}, kindPath, fmt.Errorf("device path %s is neither a drive nor a UNC path", s)
		}
	case strings.HasPrefix(t, `\\`):
		return parseUNC(s, t[2:], false)
	case len(t) >= 2 && isLetter(t[0]) && t[1] == ':':
		if !isDriveAbs(t) {
			return hostPath{}, kindPath, fmt.Errorf("path %s is relative to the current directory of drive %s", s, t[:2])
		}
		p.root = strings.ToUpper(t[:2])
		rest = t[2:]
	case strings.HasPrefix(t, `\`):
		return hostPath{}, kindPath, fmt.Errorf("path %s has no drive", s)
	default:
		return hostPath{}, kindPath, fmt.Errorf("path %s is not absolute", s)
	}
	elems, err := windowsElems(s, rest, verbatim)
	if err != nil {
		return hostPath{}, kindPath, err
	}
	p.elems = elems
	return p, kindPath, nil
}

// parseUNC parses `server\share\rest` (t, separators already `\`) of the original s.
func parseUNC(s, t string, verbatim bool) (hostPath, pathKind, error) {
	server, after, _ := strings.Cut(t, `\`)
	share, rest, _ := strings.Cut(after, `\`)
	if server == "" || share == "" {
		return hostPath{}, kindPath, fmt.Errorf("UNC path %s lacks a server or share", s)
	}
	if foldEqual(share, "pipe") || foldEqual(share, "IPC$") {
		return hostPath{}, kindPipe, nil
	}
	if server == "." || server == "?" || server == ".." || share == "." || share == ".." {
		return hostPath{}, kindPath, fmt.Errorf("UNC path %s has an invalid server or share", s)
	}
	elems, err := windowsElems(s, `\`+rest, verbatim)
	if err != nil {
		return hostPath{}, kindPath, err
	}
	return hostPath{root: `\\` + server + `\` + share, elems: elems}, kindPath, nil
}

// windowsElems splits rest (which starts at the root's separator, or is empty) into
// validated elements.
func windowsElems(s, rest string, verbatim bool) ([]string, error) {
	elems := make([]string, 0, strings.Count(rest, `\`))
	if rest == "" {
		return elems, nil
	}
	empty := false // an empty element was seen: fine only as the trailing separator
	for e := range strings.SplitSeq(rest[1:], `\`) {
		if empty && verbatim {
			return nil, fmt.Errorf("device path %s has an empty element", s)
		}
		switch e {
		case "":
			// A run of separators, or the trailing one.
			empty = true
			continue
		case ".", "..":
			if verbatim {
				return nil, fmt.Errorf("device path %s has a %q element (Windows does not resolve it there)", s, e)
			}
			if e == ".." {
				if len(elems) == 0 {
					return nil, fmt.Errorf("path %s climbs above its root", s)
				}
				elems = elems[:len(elems)-1]
			}
			continue
		}
		if err := checkWindowsElem(e); err != nil {
			return nil, fmt.Errorf("path %s: %v", s, err)
		}
		elems = append(elems, e)
	}
	return elems, nil
}

// checkWindowsElem refuses elements whose meaning Win32 would change or that name
// something other than a file.
func checkWindowsElem(e string) error {
	if strings.ContainsAny(e, `<>:"|?*`) {
		return fmt.Errorf("element %q contains a character reserved by Windows", e)
	}
	if last := e[len(e)-1]; last == '.' || last == ' ' {
		return fmt.Errorf("element %q ends in %q, which Windows strips", e, last)
	}
	if isReservedDOSName(e) {
		return fmt.Errorf("element %q is a reserved DOS device name", e)
	}
	return nil
}

// isReservedDOSName reports whether e names a DOS device (CON, PRN, AUX, NUL, COM0-9,
// LPT0-9, COM/LPT with superscript 1-3, CONIN$, CONOUT$), also with an extension.
func isReservedDOSName(e string) bool {
	base, _, _ := strings.Cut(e, ".")
	base = strings.TrimRight(base, " ")
	switch {
	case foldEqual(base, "CON"), foldEqual(base, "PRN"), foldEqual(base, "AUX"), foldEqual(base, "NUL"),
		foldEqual(base, "CONIN$"), foldEqual(base, "CONOUT$"):
		return true
	case len(base) < 4 || !(hasPrefixFold(base, "COM") || hasPrefixFold(base, "LPT")):
		return false
	}
	switch base[3:] {
	case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³":
		return true
	}
	return false
}

// hasShortNameElem reports whether e looks like an 8.3 short name ("~" followed by a
// digit, e.g. PROGRA~1). The policy cannot resolve short names without the file system.
func hasShortNameElem(e string) bool {
	for i := 0; i+1 < len(e); i++ {
		if e[i] == '~' && e[i+1] >= '0' && e[i+1] <= '9' {
			return true
		}
	}
	return false
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isDriveAbs: a drive letter, ":" and a separator.
func isDriveAbs(t string) bool {
	return len(t) >= 3 && isLetter(t[0]) && t[1] == ':' && t[2] == '\\'
}

// foldEqual compares ASCII case-insensitively; other characters must be equal. (Unicode
// case folding differs from the NTFS upcase table: folding more than Windows does could
// make two different names look equal, so it is not done.)
func foldEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca >= 'A' && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if cb >= 'A' && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && foldEqual(s[:len(prefix)], prefix)
}

// pathPrefix is a compiled mounts.allowedHostPaths entry.
type pathPrefix struct {
	raw   string
	root  string
	elems []string // literal elements or placeholders
}

// placeholders are the values of one evaluation; an empty value never matches.
type placeholders struct {
	podUID, sandboxID, containerID string
}

func (ph placeholders) value(elem string) (string, bool) {
	switch elem {
	case phPodUID:
		return ph.podUID, true
	case phSandboxID:
		return ph.sandboxID, true
	case phContainerID:
		return ph.containerID, true
	}
	return "", false
}

// safeElem reports whether v may be substituted for a placeholder: a non-empty single
// path element of letters, digits, '-', '_' and '.', not "." or "..".
func safeElem(v string) bool {
	if v == "" || v == "." || v == ".." || len(v) > 255 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(isLetter(c) || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// compilePrefix parses an allowedHostPaths entry of platform.
func compilePrefix(platform Platform, raw string) (pathPrefix, error) {
	p, kind, err := parseHostPath(platform, raw)
	if err != nil {
		return pathPrefix{}, err
	}
	if kind != kindPath {
		return pathPrefix{}, fmt.Errorf("%q is not a host directory (named pipes and pseudo-sources are never allowed)", raw)
	}
	if len(p.elems) == 0 {
		return pathPrefix{}, fmt.Errorf("%q is a root: it would allow every path below it", raw)
	}
	for _, e := range p.elems {
		if strings.ContainsAny(e, "{}") {
			switch e {
			case phPodUID, phSandboxID, phContainerID:
			default:
				return pathPrefix{}, fmt.Errorf("%q: element %q: a placeholder ({podUID}, {sandboxID}, {containerID}) must be a whole path element", raw, e)
			}
		}
	}
	return pathPrefix{raw: raw, root: p.root, elems: p.elems}, nil
}

// match reports whether p lies at or below the prefix, with placeholders substituted.
// Windows compares ASCII case-insensitively, Linux exactly.
func (pp *pathPrefix) match(platform Platform, p hostPath, ph placeholders) bool {
	if len(p.elems) < len(pp.elems) {
		return false
	}
	eq := foldEqual
	if platform == Linux {
		eq = func(a, b string) bool { return a == b }
	}
	if !eq(pp.root, p.root) {
		return false
	}
	for i, want := range pp.elems {
		if v, isPh := ph.value(want); isPh {
			if !safeElem(v) || !eq(v, p.elems[i]) {
				return false
			}
			continue
		}
		if !eq(want, p.elems[i]) {
			return false
		}
	}
	return true
}
