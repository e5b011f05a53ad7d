package policy

import (
	"testing"
)

// Golden fixture cases of rule untrusted.exec-user (testdata/untrusted.exec-user/).
func execUserCases(add fixtureAdder) {
	const eu = "untrusted.exec-user"
	add(eu, true, "exec-container-user", win, "kubectl exec as ContainerUser", nil, func(t testing.TB) Input { return winExec("ContainerUser") })
	add(eu, false, "exec-admin", win, "kubectl exec inherits the stored spec's ContainerAdministrator: rewritten", T("T6"), func(t testing.TB) Input { return winExec("ContainerAdministrator") })
	add(eu, false, "exec-system", win, "ctr task exec --user 'NT AUTHORITY\\SYSTEM': rewritten", T("T6"), func(t testing.TB) Input { return winExec(`NT AUTHORITY\SYSTEM`) })
	add(eu, false, "exec-no-user", win, "exec with no user: rewritten", T("T6"), func(t testing.TB) Input { return winExec("") })
	add(eu, true, "linux-exec-non-root", lin, "exec as uid 1000", nil, func(t testing.TB) Input { return linuxExec(1000) })
	add(eu, false, "linux-exec-root", lin, "exec as root: rewritten", T("T6"), func(t testing.TB) Input { return linuxExec(0) })
}
