package policy

import "github.com/isoguard/isoguard/internal/cri"

// checkInput records input.invalid findings (threats T13): the parts each call needs, the
// platform, the role against the spec's CRI annotations, and the runtime options' type.
func (ev *evaluation) checkInput() {
	in := ev.in
	switch in.Call {
	case CallStart, CallJoin, CallCreate, CallExec, CallUpdate:
	default:
		ev.deny("call", "unknown call %q", in.Call)
		return
	}
	if in.Platform != "" && in.Platform != ev.platform {
		ev.deny("platform", "the call is for platform %q but the policy is for %q", in.Platform, ev.platform)
	}
	if in.Namespace == "" {
		ev.deny("namespace", "no containerd namespace")
	}
	switch in.Role {
	case cri.RoleStandalone, cri.RoleSandbox, cri.RoleContainer:
	case "":
		if in.Call == CallStart || in.Call == CallJoin || in.Call == CallCreate {
			ev.deny("role", "no role (standalone, sandbox or container) for a %s call", in.Call)
		}
	default:
		ev.deny("role", "unknown role %q", in.Role)
	}
	switch in.Call {
	case CallStart:
		if in.Pod != nil {
			ev.deny("pod", "pins are given at start; a start records them")
		}
		if in.Role == cri.RoleContainer {
			ev.deny("role", "a workload container's start must be a join")
		}
	case CallJoin:
		if in.Role != cri.RoleContainer {
			ev.deny("role", "a join is for a workload container, not role %q", in.Role)
		}
	case CallExec:
		if in.Process == nil {
			ev.deny("process", "an exec without a process spec")
		}
	}
	needSpec := in.Call == CallStart || in.Call == CallJoin || in.Call == CallCreate
	if needSpec && in.Spec == nil {
		ev.deny("spec", "no OCI spec (config.json) for a %s call", in.Call)
	}
	if in.Spec != nil && needSpec {
		ev.checkRole()
	}
	if in.Options != nil && (in.Call == CallStart || in.Call == CallCreate) {
		hcs, runc, err := decodeOptions(ev.platform, in.Options)
		if err != nil {
			ev.deny("options", "%v", err)
		}
		ev.hcsIn, ev.runcIn = hcs, runc
	}
}

// checkRole compares the role the shim derived with the spec's CRI annotations
// (io.kubernetes.cri.container-type and sandbox-id come together, as runhcs requires).
func (ev *evaluation) checkRole() {
	in := ev.in
	want, sid, err := cri.ParseRole(in.Spec.Annotations)
	if err != nil {
		a := in.Spec.Annotations
		ev.deny("annotations", "inconsistent CRI annotations %s=%q / %s=%q", cri.ContainerType, a[cri.ContainerType], cri.SandboxID, a[cri.SandboxID])
		return
	}
	if in.Role != want {
		ev.deny("role", "role %q does not match the spec's CRI annotations (%q)", in.Role, want)
		return
	}
	if want != cri.RoleStandalone && sid != in.SandboxID {
		ev.deny("sandboxID", "sandbox id %q does not match the spec's %s %q", in.SandboxID, cri.SandboxID, sid)
	}
	if want == cri.RoleSandbox && in.ID != in.SandboxID {
		ev.deny("sandboxID", "a pod sandbox %q must be its own sandbox, not %q", in.ID, in.SandboxID)
	}
}
