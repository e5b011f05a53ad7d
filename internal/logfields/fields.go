// Package logfields names the fields of isoguard's log entries, once (like hcsshim's
// internal/logfields), so every package logs the same fact under the same key.
package logfields

const (
	Method    = "method"
	ID        = "id"
	ExecID    = "exec_id"
	Namespace = "namespace"
	Address   = "address"
	Delegate  = "delegate"
	Pid       = "pid"
	Tenant    = "tenant"
	Outcome   = "outcome"
	Rules     = "rules"
	Version   = "version"
	Signal    = "signal"
	Stack     = "stack"
	// Durations of the daemon's start, for operators chasing slow pod starts.
	Decide        = "decide"
	DelegateStart = "delegate_start"
	Connect       = "connect"
)
