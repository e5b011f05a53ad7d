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
	logBundle    = "bundle"
	logSandboxID = "sandbox_id"
)
