package enforce

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/isoguard/isoguard/audit"
	"github.com/isoguard/isoguard/internal/logfields"
	"github.com/isoguard/isoguard/policy"
	"github.com/isoguard/isoguard/shim/hooks"
)

// AuditEnv overrides the audit file's path (else the policy file's audit.path, else
// audit.DefaultPath).
const AuditEnv = "ISOGUARD_AUDIT_LOG"

// decide evaluates in with the policy in effect, audits the decision and returns it; the
// error is the denial (errdefs.ErrPermissionDenied).
func (e *Enforcer) decide(ctx context.Context, in policy.Input) (*loaded, policy.Decision, error) {
	rec := newRecord(in)
	l := e.policy.current()
	rec.Policy = l.path
	if l.err != nil {
		rec.Outcome, rec.Error = audit.OutcomeDenied, l.err.Error()
		if in.Pod != nil {
			rec.Tenant = in.Pod.Tenant
		}
		e.writeAudit(ctx, l, rec)
		// The cause is told, not wrapped: a denial is PermissionDenied whatever made it (a
		// missing file is NotFound, which the ttrpc edge would otherwise pick).
		return l, policy.Decision{}, fmt.Errorf("%s %s denied: %v: %w", in.Call, in.ID, l.err, errdefs.ErrPermissionDenied)
	}
	d := l.policy.Evaluate(in)
	rec.Tenant, rec.Trusted, rec.Mode = d.Tenant, d.Trusted, string(d.Mode)
	rec.KubeNamespace, rec.KubePod, rec.KubeContainer = d.KubeNamespace, d.KubePod, d.KubeContainer
	rec.Denials, rec.Mutations = d.Denials, d.Mutations
	rec.Rules = ruleIDs(d)
	rec.Outcome = outcome(d)
	e.writeAudit(ctx, l, rec)
	log.G(ctx).WithFields(log.Fields{
		logfields.Method: in.Call, logfields.ID: in.ID, logfields.Tenant: d.Tenant,
		logfields.Outcome: rec.Outcome, logfields.Rules: strings.Join(rec.Rules, ","),
	}).Info("decision")
	if err := d.Error(); err != nil {
		return l, d, fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
	}
	return l, d, nil
}

// refuse denies a call that could not be put to the policy (its config.json or process
// cannot be read, its pod's pins are corrupt): the cause is audited like a decision and
// returned as the denial.
func (e *Enforcer) refuse(ctx context.Context, call policy.Call, inst *hooks.Instance, id string, cause error) error {
	e.Refused(ctx, hooks.Refusal{Call: string(call), Namespace: inst.Namespace, ID: id, Cause: cause})
	return fmt.Errorf("%s %s denied: %v: %w", call, id, cause, errdefs.ErrPermissionDenied)
}

// Refused audits a call the wrapper refused before a hook could decide it.
func (e *Enforcer) Refused(ctx context.Context, r hooks.Refusal) {
	rec := newRecord(policy.Input{Call: policy.Call(r.Call), Namespace: r.Namespace, ID: r.ID, SandboxID: r.SandboxID})
	l := e.policy.current()
	rec.Policy = l.path
	rec.Outcome, rec.Error = audit.OutcomeDenied, r.Cause.Error()
	e.writeAudit(ctx, l, rec)
}

func newRecord(in policy.Input) *audit.Record {
	return &audit.Record{
		Time: time.Now().UTC(), Call: string(in.Call), Namespace: in.Namespace,
		ID: in.ID, ExecID: in.ExecID, SandboxID: in.SandboxID, Pid: os.Getpid(), Rules: []string{},
	}
}

func outcome(d policy.Decision) string {
	switch {
	case !d.Allowed:
		return audit.OutcomeDenied
	case d.Mode == policy.Audit && (len(d.Denials) > 0 || len(d.Mutations) > 0):
		return audit.OutcomeAudited
	case len(d.Mutations) > 0:
		return audit.OutcomeMutated
	}
	return audit.OutcomeAllowed
}

func ruleIDs(d policy.Decision) []string {
	ids := []string{}
	for _, f := range d.Denials {
		ids = append(ids, f.Rule)
	}
	for _, m := range d.Mutations {
		ids = append(ids, m.Rule)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// writeAudit appends rec to the audit trail. An audit trail that cannot be written is
// reported loudly but does not stop the node: the decision itself is made and applied.
func (e *Enforcer) writeAudit(ctx context.Context, l *loaded, rec *audit.Record) {
	if err := e.auditWriter(l).Write(rec); err != nil {
		log.G(ctx).WithError(err).Error("audit record not written")
	}
}

// auditWriter is the writer the policy version l configures ($ISOGUARD_AUDIT_LOG, else the
// file's audit.path, else audit.DefaultPath), made again when the policy changed.
func (e *Enforcer) auditWriter(l *loaded) *audit.Writer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.writer != nil && e.writerFor == l {
		return e.writer
	}
	path := os.Getenv(AuditEnv)
	var maxBytes int64
	var backups int
	if l.file != nil {
		if path == "" {
			path = l.file.Audit.Path
		}
		maxBytes, backups = int64(l.file.Audit.MaxSizeMB)<<20, l.file.Audit.MaxBackups
	}
	if path == "" {
		path = audit.DefaultPath
	}
	e.writer, e.writerFor = audit.NewWriter(path, maxBytes, backups), l
	return e.writer
}
