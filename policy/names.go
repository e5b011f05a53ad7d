package policy

// Name syntaxes the policy checks, written out by hand rather than as regular expressions:
// every process of the wrapper (start, daemon, delete) initialises this package, and
// compiling the expressions cost ~0.3 ms per process (docs/benchmarks.md). names_test.go
// checks each matcher against the expression it replaces.

// isK8sNamespace: a Kubernetes namespace name, an RFC 1123 DNS label,
// ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$.
func isK8sNamespace(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// isContainerdNamespace: containerd's identifier syntax (pkg/identifiers: alphanumerics
// separated by single '.', '_' or '-', at most 76 characters),
// ^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$.
func isContainerdNamespace(s string) bool {
	if len(s) == 0 || len(s) > 76 {
		return false
	}
	prevSep := true // the first character must be alphanumeric
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isAlnum(c):
			prevSep = false
		case c == '.' || c == '_' || c == '-':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

// isRuleID: "untrusted." and a lower-case, dash-separated name,
// ^untrusted\.[a-z]+(-[a-z]+)*$.
func isRuleID(s string) bool {
	const prefix = "untrusted."
	if len(s) <= len(prefix) || s[:len(prefix)] != prefix {
		return false
	}
	name := s[len(prefix):]
	if name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' && name[i-1] == '-' {
			return false
		}
		if (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return true
}

// isThreatID: ^T[0-9]+$.
func isThreatID(s string) bool {
	if len(s) < 2 || s[0] != 'T' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }
