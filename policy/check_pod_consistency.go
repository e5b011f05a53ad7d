package policy

import "github.com/isoguard/isoguard/internal/cri"

/*
A container belongs to the pod whose wrapper it reaches, and the pod's tenant and isolation
were pinned when that wrapper started (Decision.Pins). Every later call (a workload
container's start = join, create, exec, update) must match the pins: same containerd
namespace, same tenant, same Kubernetes pod (name and uid, when the spec names them), same
sandbox, and at create the isolation the container ends up with (after every other rule)
must be the pod's. A call without pins is denied (fail closed: the wrapper did not start
this pod, threats T4). A container whose own tenant is trusted but that reaches another
tenant's pod, or an untrusted pod, is evaluated as untrusted and denied here.

**Restricted Fields:**

Input.Namespace, the tenant (io.kubernetes.cri.sandbox-namespace or the containerd
namespace), io.kubernetes.cri.sandbox-name, io.kubernetes.cri.sandbox-uid,
io.kubernetes.cri.sandbox-id / Input.SandboxID / Input.ID, the resulting isolation

**Allowed Values:** equal to Input.Pod (the pins)
*/

var rulePodConsistency = &rule{
	id:      "untrusted.pod-consistency",
	threats: []string{"T4"},
	calls:   []Call{CallJoin, CallCreate, CallExec, CallUpdate},
	action:  "denial",
	summary: "a container's namespace, tenant, pod and isolation must match the pins recorded when its pod started; no pins = deny",
	check:   checkPodConsistency,
}

func checkPodConsistency(ev *evaluation) {
	in, pod := ev.in, ev.in.Pod
	if pod == nil {
		ev.deny("pod", "no pod was recorded for container %q (the wrapper did not start its pod); denied", in.ID)
		return
	}
	if in.Namespace != pod.Namespace {
		ev.deny("namespace", "containerd namespace %q differs from the pod's %q", in.Namespace, pod.Namespace)
	}
	if ev.id.tenant != pod.Tenant {
		ev.deny("tenant", "tenant %q differs from the pod's tenant %q", ev.id.tenant, pod.Tenant)
	} else if pod.Trusted && !ev.p.tenants[ev.id.key].trusted {
		ev.deny("tenant", "the pod was admitted for trusted tenant %q, which the policy no longer trusts; recreate the pod", pod.Tenant)
	}
	if in.Call == CallJoin || in.Call == CallCreate {
		if ev.id.kubePod != pod.KubePod {
			ev.deny("annotations["+cri.SandboxName+"]", "Kubernetes pod %q differs from the pod's %q", ev.id.kubePod, pod.KubePod)
		}
		if ev.id.kubePodUID != pod.KubePodUID {
			ev.deny("annotations["+cri.SandboxUID+"]", "Kubernetes pod uid %q differs from the pod's %q", ev.id.kubePodUID, pod.KubePodUID)
		}
	}
	switch in.Role {
	case cri.RoleContainer:
		if in.SandboxID != pod.SandboxID {
			ev.deny("sandboxID", "sandbox %q differs from the pod's sandbox %q", in.SandboxID, pod.SandboxID)
		}
	case cri.RoleSandbox, cri.RoleStandalone:
		if in.ID != pod.SandboxID {
			ev.deny("id", "container %q is a %s but the wrapper was started for %q", in.ID, in.Role, pod.SandboxID)
		}
	}
	if in.Call == CallCreate {
		if iso := ev.isolation(); iso != pod.Isolation {
			ev.deny("isolation", "isolation %q differs from the pod's isolation %q", iso, pod.Isolation)
		}
	}
}
