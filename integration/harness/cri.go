package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// The CRI tier: a private containerd with its CRI plugin, driven like kubelet drives it,
// through crictl and critest (sigs.k8s.io/cri-tools). CRIContainerd starts one (Linux);
// scripts/deps.sh cri installs the tools.

// CRIToolsVersion is the cri-tools release whose crictl and critest the tier runs
// (scripts/deps.sh CRITOOLS_VERSION).
const CRIToolsVersion = "v1.37.0"

// CRINamespace is the containerd namespace of the CRI plugin (fixed in containerd).
const CRINamespace = "k8s.io"

// CNIBinDir is where Debian's containernetworking-plugins puts the CNI plugins.
var CNIBinDir = "/usr/lib/cni"

// CrictlPath and CritestPath are the binaries scripts/deps.sh cri installs.
func CrictlPath() string {
	return filepath.Join(Cache(), "cri-tools-"+CRIToolsVersion, "bin", "crictl")
}

// CritestPath is critest's path (see CrictlPath).
func CritestPath() string {
	return filepath.Join(Cache(), "cri-tools-"+CRIToolsVersion, "bin", "critest")
}

// RuntimeHandler is one entry of the CRI plugin's runtimes table: what a RuntimeClass's
// handler (crictl runp --runtime NAME) selects.
type RuntimeHandler struct {
	Name string // the handler's name
	// Type is runtime_type: "io.containerd.runc.v2", "io.containerd.runsc.v1", or the
	// isoguard shim's type; containerd looks for containerd-shim-<...>-<v> on its PATH
	// unless Path is set.
	Type string
	// Path is runtime_path (optional): the absolute path of the shim binary to run.
	Path string
	// Options become the handler's options table, passed to the shim at create (for the
	// runc shim: BinaryName, Root, SystemdCgroup...; for runsc: ConfigPath...). Values:
	// string, bool, integers, []string.
	Options map[string]any
	// PodAnnotations and ContainerAnnotations are the annotation keys (globs) CRI passes
	// through to the shim in the OCI spec.
	PodAnnotations, ContainerAnnotations []string
}

// RuncHandler is the plain runc handler: runtime type io.containerd.runc.v2, that is the
// runc shim of the daemon's version (first on containerd's PATH), runc from the system.
func RuncHandler() RuntimeHandler {
	return RuntimeHandler{Name: "runc", Type: "io.containerd.runc.v2"}
}

// CRIOptions configure a CRI daemon (CRIContainerd).
type CRIOptions struct {
	// Options: PathPrepend, Env and ExtraConfig (tables only) of the base daemon.
	// Options.Config is ignored (the CRI tier writes the config).
	Options
	// Handlers are the runtime handlers; default: RuncHandler() alone.
	Handlers []RuntimeHandler
	// DefaultRuntime is default_runtime_name (what a pod without a handler runs with);
	// default: the first handler.
	DefaultRuntime string
	// RestrictOOMScoreAdj overrides restrict_oom_score_adj; default: true exactly when
	// this process lacks CAP_SYS_RESOURCE (runc then cannot set the CRI's -998).
	RestrictOOMScoreAdj *bool
	// RuntimeConfig are more keys of the CRI runtime plugin's own table (2.x
	// io.containerd.cri.v1.runtime, 1.7 io.containerd.grpc.v1.cri), e.g.
	// {"stats_collect_period": "1m"}; values as for RuntimeHandler.Options.
	RuntimeConfig map[string]any
}

// criVersions maps a containerd version to how its CRI plugin is configured.
var criVersions = map[string]struct {
	runtimePlugin string // the plugin whose config holds containerd.runtimes and cni
	disabled      []string
}{
	// 1.7: everything in io.containerd.grpc.v1.cri (config version 2).
	"1.7": {`"io.containerd.grpc.v1.cri"`, []string{
		"io.containerd.nri.v1.nri",
		"io.containerd.snapshotter.v1.aufs",
		"io.containerd.snapshotter.v1.btrfs",
		"io.containerd.snapshotter.v1.devmapper",
		"io.containerd.snapshotter.v1.zfs",
	}},
	// 2.x: runtimes and CNI in io.containerd.cri.v1.runtime, images (pinned sandbox image)
	// in io.containerd.cri.v1.images, the streaming server in io.containerd.grpc.v1.cri.
	"2.4": {`"io.containerd.cri.v1.runtime"`, []string{
		"io.containerd.nri.v1.nri",
		"io.containerd.snapshotter.v1.btrfs",
		"io.containerd.snapshotter.v1.devmapper",
		"io.containerd.snapshotter.v1.zfs",
	}},
}

// CRIVersions lists the containerd versions CRIContainerd accepts.
func CRIVersions() []string { return []string{"2.4", "1.7"} }

// criNet is the daemon's private CNI network.
type criNet struct {
	Name    string // network name (and CNI result cache key)
	Bridge  string // bridge interface on the host
	Subnet  string // x.y.z.0/24
	ConfDir string
	IPAMDir string // host-local dataDir
}

// gateway is the bridge's address: x.y.z.1 of the subnet.
func (n criNet) gateway() string {
	return strings.TrimSuffix(n.Subnet, "0/24") + "1"
}

// conflist is the CNI network configuration: a bridge with host-local IPAM. The loopback
// plugin is not in it: containerd adds its own loopback network (go-cni WithLoNetwork),
// running the loopback binary from the same bin dir.
//
// isGateway is false: with it the bridge plugin would also turn on the host's
// net.ipv4.ip_forward (for all of the machine). The harness gives the bridge the gateway
// address itself before containerd starts (createBridge), so the host reaches the pods and
// the pods' default route (host-local's gateway) points at the bridge all the same.
func (n criNet) conflist() string {
	b, _ := json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       n.Name,
		"plugins": []any{map[string]any{
			"type":        "bridge",
			"bridge":      n.Bridge,
			"isGateway":   false,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": n.IPAMDir,
				"ranges":  [][]map[string]string{{{"subnet": n.Subnet, "gateway": n.gateway()}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
			},
		}},
	}, "", "  ")
	return string(b) + "\n"
}

// tomlValue renders a handler option.
func tomlValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return tomlString(x), nil
	case bool, int, int32, int64, uint, uint32, uint64:
		return fmt.Sprint(x), nil
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = tomlString(s)
		}
		return "[" + strings.Join(q, ", ") + "]", nil
	}
	return "", fmt.Errorf("option value %v: unsupported type %T", v, v)
}

// criConfigTOML is the whole config file of a CRI daemon of d.Version.
func criConfigTOML(d *Daemon, o CRIOptions, net criNet, restrictOOM bool) (string, error) {
	v, ok := criVersions[d.Version]
	if !ok {
		return "", fmt.Errorf("CRI tier: unsupported containerd version %q (want one of %v)", d.Version, CRIVersions())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# private containerd %s with the CRI plugin for an isoguard CRI test\n", d.Version)
	cfgVersion := 3
	if d.Version == "1.7" {
		cfgVersion = 2
	}
	fmt.Fprintf(&b, "version = %d\n", cfgVersion)
	fmt.Fprintf(&b, "root = %s\n", tomlString(d.Root))
	fmt.Fprintf(&b, "state = %s\n", tomlString(d.State))
	fmt.Fprintf(&b, "temp = %s\n", tomlString(filepath.Join(d.Dir, "tmp")))
	quoted := make([]string, len(v.disabled))
	for i, p := range v.disabled {
		quoted[i] = tomlString(p)
	}
	fmt.Fprintf(&b, "disabled_plugins = [%s]\n", strings.Join(quoted, ", "))
	fmt.Fprintf(&b, "\n[grpc]\n  address = %s\n", tomlString(d.Address))
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %s\n", tomlString(d.TTRPCAddress))
	fmt.Fprintf(&b, "\n[debug]\n  level = \"debug\"\n")
	fmt.Fprintf(&b, "\n[plugins]\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = %s\n", tomlString(filepath.Join(d.Dir, "opt")))

	rt := "plugins." + v.runtimePlugin
	fmt.Fprintf(&b, "\n[%s]\n", rt)
	if d.Version == "1.7" {
		// 1.7: sandbox_image, and the streaming server, live in the one CRI plugin.
		fmt.Fprintf(&b, "  sandbox_image = %s\n", tomlString(CRIPauseImage))
		fmt.Fprintf(&b, "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n")
	} else {
		fmt.Fprintf(&b, "  cdi_spec_dirs = [%s]\n", tomlString(filepath.Join(d.Dir, "cdi")))
	}
	fmt.Fprintf(&b, "  restrict_oom_score_adj = %v\n", restrictOOM)
	keys := make([]string, 0, len(o.RuntimeConfig))
	for k := range o.RuntimeConfig {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s, err := tomlValue(o.RuntimeConfig[k])
		if err != nil {
			return "", fmt.Errorf("runtime config %s: %w", k, err)
		}
		fmt.Fprintf(&b, "  %s = %s\n", k, s)
	}
	// Network namespaces as bind mounts under STATE/netns instead of /var/run/netns.
	fmt.Fprintf(&b, "  netns_mounts_under_state_dir = true\n")
	fmt.Fprintf(&b, "  [%s.cni]\n", rt)
	if d.Version == "1.7" {
		fmt.Fprintf(&b, "    bin_dir = %s\n", tomlString(CNIBinDir))
	} else {
		fmt.Fprintf(&b, "    bin_dirs = [%s]\n", tomlString(CNIBinDir))
	}
	fmt.Fprintf(&b, "    conf_dir = %s\n", tomlString(net.ConfDir))
	fmt.Fprintf(&b, "  [%s.containerd]\n", rt)
	fmt.Fprintf(&b, "    default_runtime_name = %s\n", tomlString(o.DefaultRuntime))
	for _, h := range o.Handlers {
		if h.Name == "" || h.Type == "" {
			return "", fmt.Errorf("runtime handler %+v: name and type are required", h)
		}
		table := fmt.Sprintf("%s.containerd.runtimes.%s", rt, tomlString(h.Name))
		fmt.Fprintf(&b, "    [%s]\n", table)
		fmt.Fprintf(&b, "      runtime_type = %s\n", tomlString(h.Type))
		if h.Path != "" {
			fmt.Fprintf(&b, "      runtime_path = %s\n", tomlString(h.Path))
		}
		if len(h.PodAnnotations) > 0 {
			s, _ := tomlValue(h.PodAnnotations)
			fmt.Fprintf(&b, "      pod_annotations = %s\n", s)
		}
		if len(h.ContainerAnnotations) > 0 {
			s, _ := tomlValue(h.ContainerAnnotations)
			fmt.Fprintf(&b, "      container_annotations = %s\n", s)
		}
		if len(h.Options) > 0 {
			fmt.Fprintf(&b, "      [%s.options]\n", table)
			keys := make([]string, 0, len(h.Options))
			for k := range h.Options {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				s, err := tomlValue(h.Options[k])
				if err != nil {
					return "", fmt.Errorf("runtime handler %s: %w", h.Name, err)
				}
				fmt.Fprintf(&b, "        %s = %s\n", k, s)
			}
		}
	}
	if d.Version != "1.7" {
		fmt.Fprintf(&b, "\n[plugins.\"io.containerd.cri.v1.images\".pinned_images]\n  sandbox = %s\n", tomlString(CRIPauseImage))
		fmt.Fprintf(&b, "\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n")
	}
	if o.ExtraConfig != "" {
		b.WriteString("\n" + o.ExtraConfig + "\n")
	}
	return b.String(), nil
}

// criIDPattern finds the ids of the pods and containers the CRI plugin created, in its
// log (internal/cri/instrument, 1.7 pkg/cri/instrument: "RunPodSandbox for ... returns
// sandbox id %q", "CreateContainer within sandbox ... returns container id %q").
var criIDPattern = regexp.MustCompile(`returns (?:sandbox|container) id \\?"([0-9a-f]{64})\\?"`)

func criIDsInLog(log string) []string {
	seen := map[string]bool{}
	var ids []string
	for _, m := range criIDPattern.FindAllStringSubmatch(log, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			ids = append(ids, m[1])
		}
	}
	return ids
}

// shimAddressPattern finds the addresses of the shims containerd connected to, in its log
// (2.x core/runtime/v2/shim.go "connecting to shim", 1.7 runtime/v2/shim.go "shim bootstrap
// parameters", both with an address field): whatever names a shim (runc's, isoguard's)
// gives its socket.
var shimAddressPattern = regexp.MustCompile(`address="?(?:unix://)?(/run/containerd/s/[0-9A-Za-z._-]+)`)

func shimAddressesInLog(log string) []string {
	seen := map[string]bool{}
	var addrs []string
	for _, m := range shimAddressPattern.FindAllStringSubmatch(log, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			addrs = append(addrs, m[1])
		}
	}
	return addrs
}

// PodConfig describes a pod sandbox for RunPod (a subset of the CRI PodSandboxConfig).
type PodConfig struct {
	Name      string // metadata.name; default "pod"
	Namespace string // metadata.namespace; default "default"
	// Handler is the runtime handler (crictl runp --runtime); default: default_runtime_name.
	Handler     string
	HostNetwork bool
	// SharePID puts the pod's containers in one PID namespace (the pod's, pause as pid 1).
	// Default: one per container, as kubelet does; note that CRI's own default, the zero
	// value of NamespaceMode, is POD.
	SharePID    bool
	Hostname    string
	Labels      map[string]string
	Annotations map[string]string
	// Extra is merged (deeply) into the generated JSON, in CRI's field names
	// (e.g. {"linux": {"sysctls": {...}}}, {"dns_config": {...}}).
	Extra map[string]any
}

// ContainerConfig describes a container for Pod.CreateContainer (a subset of the CRI
// ContainerConfig).
type ContainerConfig struct {
	Name    string // metadata.name; default "c"
	Image   string // default CRIBusyboxImage
	Command []string
	Args    []string
	Env     map[string]string
	// RunAsUser, when set, is linux.security_context.run_as_user.
	RunAsUser *int64
	// Resources is linux.resources in CRI's field names (cpu_quota, cpu_period,
	// cpu_shares, memory_limit_in_bytes, ...).
	Resources map[string]any
	Labels    map[string]string
	Extra     map[string]any // merged like PodConfig.Extra
}

// NamespaceMode values of the CRI (runtime.v1.NamespaceMode).
const (
	nsPod       = 0
	nsContainer = 1
	nsNode      = 2
)

// namespaceOptions are the pod's linux.security_context.namespace_options, given to its
// containers too (kubelet does the same).
func namespaceOptions(p PodConfig) map[string]any {
	network, pid := nsPod, nsContainer
	if p.HostNetwork {
		network = nsNode
	}
	if p.SharePID {
		pid = nsPod
	}
	return map[string]any{"network": network, "pid": pid, "ipc": nsPod}
}

// mergeMaps returns a new map: a merged with b (see mergeInto).
func mergeMaps(a, b map[string]any) map[string]any {
	m := map[string]any{}
	mergeInto(m, a)
	mergeInto(m, b)
	return m
}

// mergeInto merges src into dst: maps recursively, everything else replaced.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
				dst[k] = dm
			}
			mergeInto(dm, sm) // copies: dst never shares a map with src
			continue
		}
		dst[k] = v
	}
}

func podJSON(p PodConfig, uid, logDir, cgroupParent string) map[string]any {
	name, ns := p.Name, p.Namespace
	if name == "" {
		name = "pod"
	}
	if ns == "" {
		ns = "default"
	}
	linux := map[string]any{
		"cgroup_parent":    cgroupParent,
		"security_context": map[string]any{"namespace_options": namespaceOptions(p)},
	}
	m := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": ns, "uid": uid, "attempt": 0},
		"log_directory": logDir,
		"linux":         linux,
	}
	if p.Hostname != "" {
		m["hostname"] = p.Hostname
	}
	if len(p.Labels) > 0 {
		m["labels"] = p.Labels
	}
	if len(p.Annotations) > 0 {
		m["annotations"] = p.Annotations
	}
	mergeInto(m, p.Extra)
	return m
}

func containerJSON(c ContainerConfig) map[string]any {
	name, image := c.Name, c.Image
	if name == "" {
		name = "c"
	}
	if image == "" {
		image = CRIBusyboxImage
	}
	m := map[string]any{
		"metadata": map[string]any{"name": name, "attempt": 0},
		"image":    map[string]any{"image": image},
		"log_path": name + ".log",
	}
	if c.Command != nil {
		m["command"] = c.Command
	}
	if c.Args != nil {
		m["args"] = c.Args
	}
	if len(c.Env) > 0 {
		keys := make([]string, 0, len(c.Env))
		for k := range c.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		env := make([]map[string]string, 0, len(keys))
		for _, k := range keys {
			env = append(env, map[string]string{"key": k, "value": c.Env[k]})
		}
		m["envs"] = env
	}
	if len(c.Labels) > 0 {
		m["labels"] = c.Labels
	}
	linux := map[string]any{}
	if c.RunAsUser != nil {
		linux["security_context"] = map[string]any{"run_as_user": map[string]any{"value": *c.RunAsUser}}
	}
	if c.Resources != nil {
		linux["resources"] = c.Resources
	}
	if len(linux) > 0 {
		m["linux"] = linux
	}
	mergeInto(m, c.Extra)
	return m
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// CritestOptions select what Critest runs.
type CritestOptions struct {
	Focus, Skip string   // ginkgo regular expressions on the full spec text; default: CritestFocus / CritestSkip
	Handler     string   // -runtime-handler; default: the daemon's default runtime
	Extra       []string // more critest flags
	Timeout     time.Duration
}

// CritestFocus is the focused subset of critest the CRI tier runs against a runtime handler:
// what goes through the shim (pod and container lifecycle, exec/execSync, attach, logs,
// port-forward, stats, namespaces and the security context), in a few minutes on 2 cores.
// Spec texts: cri-tools pkg/validate.
const CritestFocus = `PodSandbox runtime should support basic operations on PodSandbox|` +
	`Container runtime should support basic operations on container|` +
	`Container runtime should support log|` +
	`Multiple Containers|` +
	`Streaming runtime should support streaming interfaces|` +
	`Networking runtime should support networking runtime should support (DNS config|set hostname)|` +
	`Runtime info|` +
	`Idempotence|` +
	`Security Context (NamespaceOption|bucket)`

// CritestSkip removes from CritestFocus what the stand-in images cannot do: Debian's
// busybox-static runs applets without exec (FEATURE_SH_STANDALONE, PREFER_APPLETS), so
// `sh -c ls` never opens the masked /bin/ls the MaskedPaths spec checks.
const CritestSkip = `runtime should support MaskedPaths`

// CritestResult is what a critest run reported, from its ginkgo JSON report.
type CritestResult struct {
	Passed, Failed, Skipped []string // full spec texts
	Failures                map[string]string
	Duration                time.Duration
	SpecTimes               map[string]time.Duration
	Output                  string // critest's stdout+stderr
	Err                     error  // critest's exit (non-nil when a spec failed)
}

// ginkgoReport is the part of ginkgo v2's JSON report (types.Report) Critest reads.
type ginkgoReport struct {
	SpecReports []struct {
		ContainerHierarchyTexts []string
		LeafNodeText            string
		LeafNodeType            string
		State                   string
		RunTime                 time.Duration
		Failure                 *struct {
			Message  string
			Location struct {
				FileName   string
				LineNumber int
			}
		}
	}
}

func parseCritestReport(b []byte) (*CritestResult, error) {
	var reports []ginkgoReport
	if err := json.Unmarshal(b, &reports); err != nil {
		return nil, fmt.Errorf("critest JSON report: %w", err)
	}
	r := &CritestResult{Failures: map[string]string{}, SpecTimes: map[string]time.Duration{}}
	for _, rep := range reports {
		for _, s := range rep.SpecReports {
			if s.LeafNodeType != "It" {
				continue
			}
			name := strings.Join(append(append([]string{}, s.ContainerHierarchyTexts...), s.LeafNodeText), " ")
			r.SpecTimes[name] = s.RunTime
			switch s.State {
			case "passed":
				r.Passed = append(r.Passed, name)
			case "skipped", "pending":
				r.Skipped = append(r.Skipped, name)
			default: // failed, panicked, timedout, interrupted, aborted
				r.Failed = append(r.Failed, name)
				if s.Failure != nil {
					r.Failures[name] = fmt.Sprintf("%s: %s (%s:%d)", s.State, s.Failure.Message, s.Failure.Location.FileName, s.Failure.Location.LineNumber)
				} else {
					r.Failures[name] = s.State
				}
			}
		}
	}
	sort.Strings(r.Passed)
	sort.Strings(r.Failed)
	sort.Strings(r.Skipped)
	return r, nil
}
