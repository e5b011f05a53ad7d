package policy

import (
	"fmt"
	"strings"
)

// Windows user names (threats T5, T6).
//
// A name-based denylist cannot make a Windows container safe: an image can create a local
// user with any name and put it into the Administrators group, and the policy cannot see
// group membership. So the rule is an allowlist: an untrusted workload runs as the
// configured user (default ContainerUser) unless its user is exactly that user or one of
// untrusted.allowedUsers; every other name (including none at all, which lets the image's
// default user - ContainerAdministrator for servercore - apply) is rewritten. The
// administrator-equivalent recognition below serves two purposes: the policy file may not
// name such a user as allowed, and the reason recorded for a rewrite says so.

// DefaultWindowsUser is the user untrusted Windows workloads run as by default.
const DefaultWindowsUser = "ContainerUser"

// Default uid/gid of untrusted Linux workloads (nobody/nogroup).
const (
	DefaultLinuxUID = 65534
	DefaultLinuxGID = 65534
)

// isAdminAccount reports whether n (lower case, without domain) is an administrator or
// SYSTEM equivalent account or group in a Windows container or on the host.
func isAdminAccount(n string) bool {
	switch n {
	case "containeradministrator", "administrator", "administrators",
		"system", "localsystem", "local system",
		"local service", "localservice", "network service", "networkservice",
		"trustedinstaller", "domain admins", "enterprise admins":
		return true
	}
	return false
}

// IsAdminEquivalent reports whether a Windows user name names an administrator-equivalent
// account: ContainerAdministrator, Administrator, SYSTEM / LocalSystem, LOCAL SERVICE,
// NETWORK SERVICE, TrustedInstaller, the Administrators group, in any letter case, bare or
// qualified by a domain or machine ("NT AUTHORITY\SYSTEM", "BUILTIN\Administrators",
// ".\Administrator", "HOST\ContainerAdministrator") or in UPN form
// ("Administrator@host"), and the well-known SIDs (S-1-5-18, -19, -20, S-1-5-32-544,
// any BUILTIN group S-1-5-32-5xx, and a domain or machine RID 500 / 512 / 519 account).
func IsAdminEquivalent(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return false
	}
	if isAdminSID(n) {
		return true
	}
	// Down-level logon name: DOMAIN\user (take the last element).
	if i := strings.LastIndexByte(n, '\\'); i >= 0 {
		n = n[i+1:]
	}
	// UPN: user@domain.
	if i := strings.IndexByte(n, '@'); i >= 0 {
		n = n[:i]
	}
	n = strings.TrimSpace(n)
	return isAdminAccount(n)
}

func isAdminSID(n string) bool {
	switch n {
	case "s-1-5-18", "s-1-5-19", "s-1-5-20":
		return true
	}
	if strings.HasPrefix(n, "s-1-5-32-") {
		return true // BUILTIN groups: Administrators (544), Backup/Server/Account Operators, ...
	}
	if strings.HasPrefix(n, "s-1-5-21-") {
		rid := n[strings.LastIndexByte(n, '-')+1:]
		return rid == "500" || rid == "512" || rid == "519"
	}
	return false
}

// sameUser reports whether a spec's user name is exactly the configured name: ASCII
// case-insensitively (Windows account names are case-insensitive; non-ASCII letters are
// compared exactly, see foldEqual), optionally with the local-machine prefix ".\".
func sameUser(name, configured string) bool {
	if len(name) > 2 && name[0] == '.' && name[1] == '\\' {
		name = name[2:]
	}
	return foldEqual(name, configured)
}

// checkUserName validates a user name of the policy file.
func checkUserName(name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("empty user name")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("user name %q contains a control character", name)
		}
	}
	if IsAdminEquivalent(name) {
		return fmt.Errorf("user %q is administrator-equivalent", name)
	}
	return nil
}
