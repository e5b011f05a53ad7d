package policy

import (
	"strings"
	"testing"
)

func TestParseWindowsPath(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind pathKind
		want string // normalised, or the error's substring prefixed with "!"
	}{
		{`C:\var\lib`, kindPath, `C:\var\lib`},
		{`c:/var//lib/`, kindPath, `C:\var\lib`},
		{`C:\var\.\lib\x\..`, kindPath, `C:\var\lib`},
		{`C:\`, kindPath, `C:\`},
		{`\\?\C:\var\lib`, kindPath, `C:\var\lib`},
		{`\\.\C:\var\lib\`, kindPath, `C:\var\lib`},
		{`\??\C:\var`, kindPath, `C:\var`},
		{`\\?\UNC\srv\share\a`, kindPath, `\\srv\share\a`},
		{`//srv/share/a/../b`, kindPath, `\\srv\share\b`},
		{`\\.\pipe\x`, kindPipe, ""},
		{`\\.\PIPE`, kindPipe, ""},
		{`//./pipe/x`, kindPipe, ""},
		{`\\?\pipe\x`, kindPipe, ""},
		{`\??\pipe\x`, kindPipe, ""},
		{`\\host\pipe\x`, kindPipe, ""},
		{`\\host\ipc$`, kindPipe, ""},
		{`sandbox:///x`, kindScheme, ""},
		{`sandbox-tmp://x`, kindScheme, ""},
		{`hugepages://2M/x`, kindScheme, ""},
		{`C://x`, kindPath, `C:\x`}, // a drive letter is not a scheme
		{``, kindPath, "!empty"},
		{"C:\\a\x00b", kindPath, "!control character"},
		{`C:x`, kindPath, "!relative to the current directory"},
		{`C:`, kindPath, "!relative to the current directory"},
		{`\x`, kindPath, "!has no drive"},
		{`x\y`, kindPath, "!not absolute"},
		{`C:\..`, kindPath, "!climbs above its root"},
		{`\\?\C:\a\..\b`, kindPath, `!".." element`},
		{`\\?\C:\a\.\b`, kindPath, `!"." element`},
		{`\\?\C:\a\\b`, kindPath, "!empty element"},
		{`\\?\C:\a/b`, kindPath, `!contains "/"`},
		{`\\.\PhysicalDrive0`, kindPath, "!neither a drive nor a UNC path"},
		{`\\?\Volume{x}\a`, kindPath, "!neither a drive nor a UNC path"},
		{`\\?\GLOBALROOT\Device\x`, kindPath, "!neither a drive nor a UNC path"},
		{`\\?\C:`, kindPath, "!neither a drive nor a UNC path"},
		{`\\srv`, kindPath, "!lacks a server or share"},
		{`\\srv\..\x`, kindPath, "!invalid server or share"},
		{`C:\a\b.`, kindPath, "!ends in '.'"},
		{`C:\a\b \c`, kindPath, "!ends in ' '"},
		{`C:\a\f:stream`, kindPath, "!reserved by Windows"},
		{`C:\a\b?`, kindPath, "!reserved by Windows"},
		{`C:\a\nul`, kindPath, "!reserved DOS device name"},
		{`C:\a\COM1.txt`, kindPath, "!reserved DOS device name"},
		{`C:\a\LPT²`, kindPath, "!reserved DOS device name"},
		{`C:\a\CONOUT$`, kindPath, "!reserved DOS device name"},
		{`C:\a\console`, kindPath, `C:\a\console`},
		{`C:\a\COM10`, kindPath, `C:\a\COM10`},
		{`C:\a\...x`, kindPath, `C:\a\...x`},
	} {
		p, kind, err := parseWindowsPath(c.in)
		switch {
		case strings.HasPrefix(c.want, "!"):
			if err == nil || !strings.Contains(err.Error(), c.want[1:]) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.want[1:])
			}
		case err != nil:
			t.Errorf("%q: %v", c.in, err)
		case kind != c.kind:
			t.Errorf("%q: kind %d, want %d", c.in, kind, c.kind)
		case c.kind == kindPath && p.String(Windows) != c.want:
			t.Errorf("%q: %q, want %q", c.in, p.String(Windows), c.want)
		}
	}
}

func TestParseLinuxPath(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/var/lib", "/var/lib"},
		{"//var/./lib/", "/var/lib"},
		{"/", "/"},
		{"", "!empty"},
		{"var", "!not absolute"},
		{"/var/../etc", `!".." element`},
		{"/a\x00", "!NUL"},
		{`/C:\x`, `/C:\x`},
	} {
		p, err := parseLinuxPath(c.in)
		switch {
		case strings.HasPrefix(c.want, "!"):
			if err == nil || !strings.Contains(err.Error(), c.want[1:]) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.want[1:])
			}
		case err != nil:
			t.Errorf("%q: %v", c.in, err)
		case p.String(Linux) != c.want:
			t.Errorf("%q: %q, want %q", c.in, p.String(Linux), c.want)
		}
	}
}

func TestPrefixMatch(t *testing.T) {
	ph := placeholders{podUID: "uid-1", sandboxID: "sb1", containerID: "c1"}
	for _, c := range []struct {
		platform     Platform
		prefix, path string
		ph           placeholders
		want         bool
	}{
		{Windows, `C:\var\lib\kubelet\pods\{podUID}\`, `c:\VAR\lib\kubelet\pods\UID-1\volumes`, ph, true},
		{Windows, `C:\var\lib\kubelet\pods\{podUID}\`, `C:\var\lib\kubelet\pods\uid-1`, ph, true},
		{Windows, `C:\var\lib\kubelet\pods\{podUID}\`, `C:\var\lib\kubelet\pods`, ph, false},
		{Windows, `C:\var\lib\kubelet\pods\{podUID}\`, `C:\var\lib\kubelet\pods\uid-2`, ph, false},
		{Windows, `C:\var\lib\kubelet\pods\{podUID}\`, `C:\var\lib\kubelet\pods\uid-10`, ph, false},
		{Windows, `C:\var\lib\kubelet\pods\{podUID}\`, `D:\var\lib\kubelet\pods\uid-1`, ph, false},
		{Windows, `C:\var\lib\kubelet\pods\{podUID}\`, `C:\var\lib\kubelet\pods\uid-1`, placeholders{}, false},
		{Windows, `C:\var\lib\kubelet\pods\{podUID}\`, `C:\var\lib\kubelet\pods\..`, placeholders{podUID: ".."}, false},
		{Windows, `C:\data\K\`, "C:\\data\\\u212a", ph, false}, // Kelvin sign: not folded
		{Windows, `\\srv\share\x`, `\\SRV\Share\x\y`, ph, true},
		{Linux, "/var/lib/kubelet/pods/{podUID}/", "/var/lib/kubelet/pods/uid-1/volumes", ph, true},
		{Linux, "/var/lib/kubelet/pods/{podUID}/", "/var/lib/kubelet/pods/UID-1/volumes", ph, false},
		{Linux, "/run/x/{sandboxID}/", "/run/x/sb1/shm", ph, true},
		{Linux, "/c/{containerID}/volumes/", "/c/c1/volumes/v", ph, true},
		{Linux, "/c/{containerID}/volumes/", "/c/c1/volumesx", ph, false},
	} {
		pp, err := compilePrefix(c.platform, c.prefix)
		if err != nil {
			t.Fatalf("%q: %v", c.prefix, err)
		}
		p, _, err := parseHostPath(c.platform, c.path)
		if err != nil {
			t.Fatalf("%q: %v", c.path, err)
		}
		if got := pp.match(c.platform, p, c.ph); got != c.want {
			t.Errorf("%s %q ~ %q (%+v): %v, want %v", c.platform, c.prefix, c.path, c.ph, got, c.want)
		}
	}
}

func TestShortNames(t *testing.T) {
	for e, want := range map[string]bool{"PROGRA~1": true, "KUBERN~12": true, "kubernetes.io~secret": false, "a~": false, "~1": true, "x~y1": false} {
		if hasShortNameElem(e) != want {
			t.Errorf("%q: %v", e, !want)
		}
	}
}

func TestIsAdminEquivalent(t *testing.T) {
	for _, n := range []string{
		"ContainerAdministrator", "containeradministrator", "CONTAINERADMINISTRATOR", " Administrator ",
		`.\Administrator`, `WEB-0\ContainerAdministrator`, "Administrator@web-0", "administrator@corp.example.com",
		`NT AUTHORITY\SYSTEM`, "SYSTEM", "LocalSystem", `NT AUTHORITY\LOCAL SERVICE`, "LOCAL SERVICE", "NETWORK SERVICE",
		`NT AUTHORITY\NetworkService`, `BUILTIN\Administrators`, "Administrators", `NT SERVICE\TrustedInstaller`,
		`CORP\Domain Admins`, "S-1-5-18", "s-1-5-19", "S-1-5-20", "S-1-5-32-544", "S-1-5-21-1-2-3-500", "S-1-5-21-1-2-3-512",
	} {
		if !IsAdminEquivalent(n) {
			t.Errorf("%q is not recognised as administrator-equivalent", n)
		}
	}
	for _, n := range []string{"", "ContainerUser", `.\ContainerUser`, "appuser", "Admin", "administrator2", "S-1-5-21-1-2-3-1001", "sys"} {
		if IsAdminEquivalent(n) {
			t.Errorf("%q is recognised as administrator-equivalent", n)
		}
	}
}

func TestSameUser(t *testing.T) {
	for _, c := range []struct {
		name string
		want bool
	}{
		{"ContainerUser", true}, {"containeruser", true}, {`.\ContainerUser`, true},
		{`..\ContainerUser`, false}, {`WEB-0\ContainerUser`, false}, {"ContainerUser@web-0", false},
		{"ContainerUser ", false}, {"ContainerUſer", false}, {"", false},
	} {
		if got := sameUser(c.name, "ContainerUser"); got != c.want {
			t.Errorf("%q: %v", c.name, got)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{"64": "64", "true": "true", "False": "False", "": `""`, "C:\\x": "(redacted)", "hunter2": "(redacted)", "123456789012345678901": "(redacted)"} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
