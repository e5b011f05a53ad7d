package policy

import (
	"fmt"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

/*
The init process of an untrusted workload runs as the configured unprivileged user, on
the final spec (the config.json runhcs or runc reads at Create).

Windows: the user is rewritten to untrusted.user (default ContainerUser) unless it already
is that user or one of untrusted.allowedUsers (ASCII case-insensitive, optionally ".\"
prefixed). That includes a spec with no user at all, where the image's default user
applies (ContainerAdministrator for servercore). A denylist of administrator names is not
enough (an image can create an administrator with any name); IsAdminEquivalent only
explains the rewrite in the recorded reason and keeps such names out of the policy file.

Linux: uid 0 and gid 0 are rewritten to untrusted.linuxUser (default 65534/65534), gid 0
is removed from the additional groups. Other uids are kept (as with runAsNonRoot).

Rewriting (rather than denying) keeps pods that merely default to an administrator
working; the mutation is recorded with the old user name.

**Restricted Fields:**

spec.process.user.username (Windows)
spec.process.user.uid, spec.process.user.gid, spec.process.user.additionalGids (Linux)

**Allowed Values:**

Windows: untrusted.user or one of untrusted.allowedUsers (anything else is rewritten)
Linux: uid != 0, gid != 0, no additional gid 0 (root is rewritten or removed)
*/

var ruleUser = &rule{
	id:      "untrusted.user",
	threats: []string{"T5"},
	calls:   []Call{CallStart, CallCreate},
	action:  "mutation",
	summary: "the init process runs as untrusted.user (Windows, default ContainerUser) or a non-root uid/gid (Linux); rewritten",
	check:   checkUser,
}

func checkUser(ev *evaluation) {
	if ev.in.Spec.Process == nil {
		return // nothing runs (runhcs then starts no process)
	}
	fixUser(ev, "spec.process.user", ev.in.Spec.Process.User, func() *specs.User { return &ev.processW().User })
}

// fixUser applies the user rule to u, writing through w, recording fields under prefix.
func fixUser(ev *evaluation, prefix string, u specs.User, w func() *specs.User) {
	p := ev.p
	if ev.platform == Linux {
		if u.UID == 0 {
			w().UID = p.linuxUID
			ev.mutate(prefix+".uid", "0", strconv.FormatUint(uint64(p.linuxUID), 10), fmt.Sprintf("tenant %q does not run as root", ev.id.tenant))
		}
		if u.GID == 0 {
			w().GID = p.linuxGID
			ev.mutate(prefix+".gid", "0", strconv.FormatUint(uint64(p.linuxGID), 10), fmt.Sprintf("tenant %q does not run in the root group", ev.id.tenant))
		}
		if slices.Contains(u.AdditionalGids, 0) {
			wu := w()
			wu.AdditionalGids = slices.DeleteFunc(wu.AdditionalGids, func(g uint32) bool { return g == 0 })
			ev.mutate(prefix+".additionalGids", "0", "(removed)", fmt.Sprintf("tenant %q does not run in the root group", ev.id.tenant))
		}
		return
	}
	name := u.Username
	if sameUser(name, p.user) || slices.ContainsFunc(p.allowedUsers, func(a string) bool { return sameUser(name, a) }) {
		return
	}
	var reason string
	switch {
	case name == "":
		reason = fmt.Sprintf("no user set (the image's default user, e.g. ContainerAdministrator, would apply); tenant %q runs as %q", ev.id.tenant, p.user)
	case IsAdminEquivalent(name):
		reason = fmt.Sprintf("user %q is administrator-equivalent; tenant %q runs as %q", name, ev.id.tenant, p.user)
	default:
		reason = fmt.Sprintf("user %q is not an allowed user; tenant %q runs as %q", name, ev.id.tenant, p.user)
	}
	w().Username = p.user
	old := name
	if old == "" {
		old = "(none)"
	}
	ev.mutate(prefix+".username", old, p.user, reason)
}
