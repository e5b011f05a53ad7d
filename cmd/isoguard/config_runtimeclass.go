package main

import (
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// runtimeClass is what `isoguard config runtimeclass` prints: a node.k8s.io/v1
// RuntimeClass for the isoguard handler.
type runtimeClass struct {
	OS             string // the nodes': windows or linux
	Name           string
	Handler        string
	OverheadCPU    string
	OverheadMemory string
	NoOverhead     bool
}

func validateQuantity(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("%q is not a Kubernetes quantity (e.g. 500m, 1, 512Mi, 1Gi): %v", s, err)
	}
	if q.Sign() <= 0 {
		return fmt.Errorf("%q must be positive (--no-overhead leaves the overhead out)", s)
	}
	return nil
}

func (r runtimeClass) validate() (flagName string, err error) {
	if r.OS != "windows" && r.OS != "linux" {
		return "os", fmt.Errorf("%q: want windows or linux (the nodes' OS)", r.OS)
	}
	if err := validateHandler(r.Handler); err != nil {
		return "handler", err
	}
	if r.Name == "" || len(r.Name) > 63 || !dnsLabel.MatchString(r.Name) {
		return "name", fmt.Errorf("%q is not a lowercase RFC 1123 label (a-z, 0-9 and '-', at most 63 characters)", r.Name)
	}
	if !r.NoOverhead {
		if err := validateQuantity(r.OverheadCPU); err != nil {
			return "overhead-cpu", err
		}
		if err := validateQuantity(r.OverheadMemory); err != nil {
			return "overhead-memory", err
		}
	}
	return "", nil
}

func runConfigRuntimeClass(args []string, stdout, stderr io.Writer) int {
	fs := newCommand("isoguard config runtimeclass", "[--os windows|linux] [flags]\n\nPrints a node.k8s.io/v1 RuntimeClass for the isoguard runtime handler: pods that name it run\nthrough isoguard; overhead.podFixed accounts for each pod's utility VM (Windows) or sandbox\n(Linux, gVisor).", stderr)
	r := runtimeClass{}
	fs.StringVar(&r.OS, "os", "windows", "the nodes' OS: windows or linux")
	fs.StringVar(&r.Handler, "handler", DefaultHandler, "runtime handler name, as in containerd's config (isoguard config containerd --handler)")
	fs.StringVar(&r.Name, "name", "", "RuntimeClass name, what pods put in runtimeClassName (default: the handler's name)")
	fs.StringVar(&r.OverheadCPU, "overhead-cpu", "", "CPU a pod's utility VM (Windows) or sandbox (Linux) costs beyond its containers' requests (overhead.podFixed.cpu); default "+DefaultOverheadCPU+" (Windows), "+DefaultLinuxOverheadCPU+" (Linux)")
	fs.StringVar(&r.OverheadMemory, "overhead-memory", "", "memory a pod's utility VM or sandbox costs beyond its containers' requests (overhead.podFixed.memory); default "+DefaultOverheadMemory+" (Windows), "+DefaultLinuxOverheadMemory+" (Linux)")
	fs.BoolVar(&r.NoOverhead, "no-overhead", false, "leave overhead out (the scheduler then does not count the utility VM or sandbox)")
	if code, done := fs.parse(args, stdout); done {
		return code
	}
	r.defaults()
	if r.Name == "" {
		r.Name = r.Handler
	}
	if flagName, err := r.validate(); err != nil {
		return usageError(stderr, "isoguard config runtimeclass", flagName, err)
	}
	fmt.Fprint(stdout, r.YAML())
	return exitOK
}

// defaults fills the overhead the nodes' OS implies.
func (r *runtimeClass) defaults() {
	cpu, mem := DefaultOverheadCPU, DefaultOverheadMemory
	if r.OS == "linux" {
		cpu, mem = DefaultLinuxOverheadCPU, DefaultLinuxOverheadMemory
	}
	if r.OverheadCPU == "" {
		r.OverheadCPU = cpu
	}
	if r.OverheadMemory == "" {
		r.OverheadMemory = mem
	}
}

// YAML renders the RuntimeClass. r must be valid.
func (r runtimeClass) YAML() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	if r.OS == "linux" {
		r.linuxYAML(w)
		return b.String()
	}
	w("# RuntimeClass for the isoguard runtime handler %q (docs/install-windows.md).\n", r.Handler)
	w("# Pods that set runtimeClassName: %s run through isoguard: untrusted tenants get Hyper-V\n", r.Name)
	w("# isolation and ContainerUser. Admission must keep tenants from choosing another class\n")
	w("# (deploy/kubernetes/admission-policy.yaml, threat T1 in docs/threat-model.md).\n")
	w("apiVersion: node.k8s.io/v1\n")
	w("kind: RuntimeClass\n")
	w("metadata:\n")
	w("  name: %s\n", yamlString(r.Name))
	w("  labels:\n")
	w("    app.kubernetes.io/name: \"isoguard\"\n")
	w("handler: %s\n", yamlString(r.Handler))
	if !r.NoOverhead {
		w("# The utility VM of each pod: the scheduler and the kubelet add this to the pod's requests.\n")
		w("overhead:\n")
		w("  podFixed:\n")
		w("    cpu: %s\n", yamlString(r.OverheadCPU))
		w("    memory: %s\n", yamlString(r.OverheadMemory))
	}
	w("scheduling:\n")
	w("  # Only Windows nodes have the handler. Pin further (e.g. a label of your isoguard node\n")
	w("  # pool) if not every Windows node runs isoguard.\n")
	w("  nodeSelector:\n")
	w("    kubernetes.io/os: \"windows\"\n")
	w("  # Windows nodes are often tainted os=windows:NoSchedule; pods of this class tolerate it.\n")
	w("  tolerations:\n")
	w("  - key: \"os\"\n")
	w("    operator: \"Equal\"\n")
	w("    value: \"windows\"\n")
	w("    effect: \"NoSchedule\"\n")
	return b.String()
}

// linuxYAML is the RuntimeClass of Linux nodes.
func (r runtimeClass) linuxYAML(w func(string, ...any)) {
	w("# RuntimeClass for the isoguard runtime handler %q on Linux nodes (docs/kubernetes.md).\n", r.Handler)
	w("# Pods that set runtimeClassName: %s run through isoguard: untrusted tenants run in the\n", r.Name)
	w("# node policy's sandbox runtime (gVisor) as a non-root uid. Admission must keep tenants\n")
	w("# from choosing another class (threat T1 in docs/threat-model.md).\n")
	w("apiVersion: node.k8s.io/v1\n")
	w("kind: RuntimeClass\n")
	w("metadata:\n")
	w("  name: %s\n", yamlString(r.Name))
	w("  labels:\n")
	w("    app.kubernetes.io/name: \"isoguard\"\n")
	w("handler: %s\n", yamlString(r.Handler))
	if !r.NoOverhead {
		w("# An untrusted pod's gVisor sandbox (sandbox, gofer, shim): the scheduler and the kubelet\n")
		w("# add this to the pod's requests (docs/gvisor-notes.md measures it).\n")
		w("overhead:\n")
		w("  podFixed:\n")
		w("    cpu: %s\n", yamlString(r.OverheadCPU))
		w("    memory: %s\n", yamlString(r.OverheadMemory))
	}
	w("scheduling:\n")
	w("  # Only Linux nodes with isoguard have the handler; pin further if not every Linux node does.\n")
	w("  nodeSelector:\n")
	w("    kubernetes.io/os: \"linux\"\n")
}
