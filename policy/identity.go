package policy

import "github.com/isoguard/isoguard/internal/cri"

// identity is who a workload belongs to.
type identity struct {
	key           tenantKey
	tenant        string // display form: the Kubernetes namespace, or "containerd:<ns>"
	kubeNamespace string
	kubePod       string
	kubePodUID    string
	kubeContainer string
}

func tenantName(k tenantKey) string {
	if k.kind == tenantKubernetes {
		return k.name
	}
	return "containerd:" + k.name
}

// identify finds the workload's tenant. The Kubernetes namespace (CRI annotation
// io.kubernetes.cri.sandbox-namespace) counts only for a pod sandbox or container in the
// CRI plugin's containerd namespace; anything else (ctr, other clients, a standalone
// container that merely carries the annotation) is the tenant of its containerd namespace
// (threats T2). For exec and update the pod's pins name the Kubernetes identity.
func (p *Policy) identify(in *Input) identity {
	id := identity{key: tenantKey{kind: tenantContainerd, name: in.Namespace}}
	inCRI := in.Namespace == p.criNamespace
	switch {
	case in.Spec != nil && (in.Call == CallStart || in.Call == CallJoin || in.Call == CallCreate):
		a := in.Spec.Annotations
		if inCRI && (in.Role == cri.RoleSandbox || in.Role == cri.RoleContainer) && a[cri.SandboxNamespace] != "" {
			id.key = tenantKey{kind: tenantKubernetes, name: a[cri.SandboxNamespace]}
			id.kubeNamespace = a[cri.SandboxNamespace]
			id.kubePod = a[cri.SandboxName]
			id.kubePodUID = a[cri.SandboxUID]
			id.kubeContainer = a[cri.ContainerName]
		}
	case in.Pod != nil:
		if inCRI && in.Pod.KubeNamespace != "" {
			id.key = tenantKey{kind: tenantKubernetes, name: in.Pod.KubeNamespace}
			id.kubeNamespace = in.Pod.KubeNamespace
			id.kubePod = in.Pod.KubePod
			id.kubePodUID = in.Pod.KubePodUID
		}
	}
	id.tenant = tenantName(id.key)
	return id
}
