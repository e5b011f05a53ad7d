package proc

import (
	"path/filepath"
	"strings"
)

// argvMatches reports whether a command line (argv) runs binary (base names compared, the
// ".exe" suffix and ASCII case ignored) for task id: "-id ID", "--id ID", "-id=ID" or
// "--id=ID" among its arguments, before the action. An id that merely occurs inside another
// argument does not match.
func argvMatches(argv []string, binary, id string) bool {
	if len(argv) == 0 || id == "" || !sameBase(argv[0], binary) {
		return false
	}
	v, ok := flagValue(argv, "id")
	return ok && v == id
}

// shimArgvMatches reports whether argv is a shim command of binary for task id of
// namespace, started for the containerd at address: the flags containerd gives every shim
// (and the runc shim gives its daemon), each compared whole.
func shimArgvMatches(argv []string, binary, namespace, id, address string) bool {
	if !argvMatches(argv, binary, id) {
		return false
	}
	ns, ok := flagValue(argv, "namespace")
	if !ok || ns != namespace {
		return false
	}
	a, ok := flagValue(argv, "address")
	return ok && a == address
}

// flagValue is the value of the first -name flag of argv ("-name V", "--name V",
// "-name=V" or "--name=V").
func flagValue(argv []string, name string) (string, bool) {
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "-"+name || a == "--"+name:
			if i+1 < len(argv) {
				return argv[i+1], true
			}
			return "", false
		case strings.HasPrefix(a, "-"+name+"=") || strings.HasPrefix(a, "--"+name+"="):
			return a[strings.IndexByte(a, '=')+1:], true
		}
	}
	return "", false
}

func sameBase(a, b string) bool {
	base := func(p string) string {
		p = filepath.Base(strings.ReplaceAll(p, `\`, "/"))
		return strings.TrimSuffix(strings.ToLower(p), ".exe")
	}
	return base(a) == base(b)
}
