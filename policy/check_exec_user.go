package policy

import specs "github.com/opencontainers/runtime-spec/specs-go"

/*
An exec'd process of an untrusted workload runs as the configured unprivileged user, by
the same rule as the init process (untrusted.user). runhcs uses the Exec request's process
spec as is (execInternal; its user.username becomes the process user), and containerd's CRI
builds every exec from the container spec it stored, not from config.json
(container_execsync.go): rewriting config.json does not reach `kubectl exec`, and
`ctr task exec --user` asks for any user directly. So the Exec request is rewritten too.

**Restricted Fields:**

process.user.username (Windows)
process.user.uid, process.user.gid, process.user.additionalGids (Linux)

**Allowed Values:** as untrusted.user (anything else is rewritten)
*/

var ruleExecUser = &rule{
	id:      "untrusted.exec-user",
	threats: []string{"T6"},
	calls:   []Call{CallExec},
	action:  "mutation",
	summary: "an Exec request's process runs as untrusted.user / a non-root uid/gid; rewritten",
	check:   checkExecUser,
}

func checkExecUser(ev *evaluation) {
	fixUser(ev, "process.user", ev.in.Process.User, func() *specs.User { return &ev.execW().User })
}
