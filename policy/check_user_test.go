package policy

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Golden fixture cases of rule untrusted.user (testdata/untrusted.user/).
func userCases(add fixtureAdder) {
	const user = "untrusted.user"
	add(user, true, "container-user", win, "the spec already runs as ContainerUser", nil, winCreate)
	add(user, true, "container-user-dot-prefix", win, `.\ContainerUser, in another letter case`, nil, func(t testing.TB) Input { return withUser(winCreate(t), `.\containeruser`) })
	add(user, true, "allowed-user", win, "a user on untrusted.allowedUsers", nil, func(t testing.TB) Input { return withUser(winCreate(t), "AppUser") })
	for _, c := range []struct{ name, user, desc string }{
		{"container-administrator", "ContainerAdministrator", "explicit runAsUserName ContainerAdministrator"},
		{"no-user", "", "no user: the image's default (servercore: ContainerAdministrator) would apply"},
		{"lower-case-admin", "containeradministrator", "admin name in lower case"},
		{"nt-authority-system", `NT AUTHORITY\SYSTEM`, "SYSTEM"},
		{"local-service", `NT AUTHORITY\LOCAL SERVICE`, "LOCAL SERVICE"},
		{"network-service", "NETWORK SERVICE", "NETWORK SERVICE"},
		{"builtin-administrators", `BUILTIN\Administrators`, "the Administrators group"},
		{"machine-prefix-admin", `WEB-0\ContainerAdministrator`, "admin qualified by the machine name"},
		{"dot-prefix-admin", `.\Administrator`, `admin with the local ".\" prefix`},
		{"upn-admin", "Administrator@web-0", "admin in UPN form"},
		{"system-sid", "S-1-5-18", "the SYSTEM SID"},
		{"image-local-user", "svc-app", "a user the image created (it may be in Administrators): not allowed, rewritten"},
		{"lookalike-unicode", "ContainerUſer", "a non-ASCII look-alike of ContainerUser (Unicode case folding would equate it)"},
	} {
		add(user, false, c.name, win, c.desc+": rewritten to ContainerUser", T("T5"), func(t testing.TB) Input { return withUser(winCreate(t), c.user) })
	}
	add(user, false, "sandbox-start-admin", win, "the sandbox (pause) at start with ContainerAdministrator", T("T5"), func(t testing.TB) Input {
		in := winStart(t)
		in.Spec.Process.User.Username = "ContainerAdministrator"
		return in
	})
	add(user, true, "linux-non-root", lin, "uid/gid 1000", nil, linuxCreate)
	add(user, false, "linux-root", lin, "uid 0 / gid 0 / additional gid 0: rewritten to 65534", T("T5"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Spec.Process.User = specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}}
		return in
	})
}
