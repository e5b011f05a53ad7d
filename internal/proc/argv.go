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
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "-id" || a == "--id":
			if i+1 < len(argv) {
				return argv[i+1] == id
			}
			return false
		case strings.HasPrefix(a, "-id=") || strings.HasPrefix(a, "--id="):
			return a[strings.IndexByte(a, '=')+1:] == id
		}
	}
	return false
}

func sameBase(a, b string) bool {
	base := func(p string) string {
		p = filepath.Base(strings.ReplaceAll(p, `\`, "/"))
		return strings.TrimSuffix(strings.ToLower(p), ".exe")
	}
	return base(a) == base(b)
}
