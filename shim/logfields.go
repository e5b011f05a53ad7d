package shim

// Log field names, defined once (like hcsshim internal/logfields).
const (
	logMethod    = "method"
	logID        = "id"
	logExecID    = "exec_id"
	logNamespace = "namespace"
	logAddress   = "address"
	logDelegate  = "delegate"
	logPid       = "pid"
	logTenant    = "tenant"
	logOutcome   = "outcome"
	logRules     = "rules"
	logVersion   = "version"
	logSignal    = "signal"
	logStack     = "stack"
	// Durations of the daemon's start, for operators chasing slow pod starts.
	logDecide        = "decide"
	logDelegateStart = "delegate_start"
	logConnect       = "connect"
)
