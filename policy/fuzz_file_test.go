package policy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	"google.golang.org/protobuf/proto"
)

// fieldErrors are the *FieldError values inside err (joined or wrapped).
func fieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if u := errors.Unwrap(err); u != nil {
			walk(u)
		}
	}
	walk(err)
	return out
}

// yamlSyntaxLine is the line yaml names in a syntax error ("yaml: line N: ...").
var yamlSyntaxLine = regexp.MustCompile(`^invalid node policy: yaml: line (\d+):`)

// yamlLines is the number of lines of data as YAML reads them: UTF-16 after a byte order
// mark, else UTF-8 (yaml.v3 readerc.go), and CR LF, CR, LF, NEL, LS and PS end a line
// (is_break), counting the one after the last break.
func yamlLines(data []byte) int {
	text := string(data)
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}):
		order = binary.LittleEndian
	case bytes.HasPrefix(data, []byte{0xfe, 0xff}):
		order = binary.BigEndian
	}
	if order != nil {
		units := make([]uint16, (len(data)-2)/2)
		if err := binary.Read(bytes.NewReader(data[2:]), order, units); err != nil {
			panic(err)
		}
		text = string(utf16.Decode(units))
	}
	text = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u0085", "\n", "\u2028", "\n", "\u2029", "\n").Replace(text)
	return strings.Count(text, "\n") + 1
}

// checkFileError: err wraps ErrInvalid, and every line it names (as FieldError data, or as
// yaml's syntax error) is a line of data.
func checkFileError(t *testing.T, what string, data []byte, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("%s: error does not wrap ErrInvalid: %v", what, err)
	}
	lines := yamlLines(data)
	for _, fe := range fieldErrors(err) {
		if fe.Line < 0 || fe.Line > lines {
			t.Fatalf("%s: %q names line %d of a %d-line file", what, fe.Error(), fe.Line, lines)
		}
	}
	if m := yamlSyntaxLine.FindStringSubmatch(err.Error()); m != nil {
		if n, _ := strconv.Atoi(m[1]); n < 1 || n > lines {
			t.Fatalf("%s: %q names line %d of a %d-line file", what, err, n, lines)
		}
	}
}

// FuzzParse feeds arbitrary bytes to the policy file parser and compiles what it accepts
// for both platforms. Properties: no panic; every error wraps ErrInvalid; every line an error
// names (FieldError.Line, yaml's "line N") exists in the input; a file Parse accepts fails
// Compile only with errors naming a field (the platform-dependent checks of validate, or the
// file's platform), never with an error of compile's own that validate missed; a compiled
// policy evaluates a CRI pod's start and Create (with CRI's snapshot mounts and fifos or
// pipes) without an internal error; the rules on what CRI never sends (host programs,
// denied spec fields) do not deny it, nor do untrusted.stdio and untrusted.rootfs while the
// file leaves their lists at the defaults; and an untrusted pod that runs in enforce mode
// (and the isolation rule not in audit) gets Hyper-V options on Windows and the sandbox
// shim on Linux, whatever the file says:
//
//	go test ./policy -run '^$' -fuzz '^FuzzParse$' -fuzztime 1000000x
func FuzzParse(f *testing.F) {
	var files []string
	for _, glob := range []string{"testdata/policies/*.yaml", "../examples/*.yaml", "../deploy/windows/policy.yaml"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	if len(files) < 10 {
		f.Fatalf("seed policies: found only %v", files)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		header + "tenants:\n  - kubernetesNamespace: a\n    trustd: true\n",
		header + "untrusted:\n  limits:\n    uvmMemoryMB: lots\n    pids: many\n",
		header + "mode: audit\nmode: enforce\n",
		header + "---\n" + header,
		header + "untrusted:\n  mounts:\n    allowedHostPaths: ['C:\\ok\\', 'var\\lib', '/var/../x']\n  devices:\n    allowed: [fuse, 'class/x']\n",
		header + "rules:\n  untrusted.isolation: audit\n  untrusted.x: off\n",
		header + "x: &a {mode: audit}\nuntrusted: *a\n",
		header + "untrusted:\n  <<: {user: ContainerUser}\n",
		"apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\ntenants: [\n",
		header + "untrusted:\n  stdio:\n    allowedPaths: [/run/containerd/fifo, '\\\\.\\pipe\\ctr-']\n  rootfs:\n    allowedSources: ['D:\\containerd\\root', /var/lib/containerd/]\n  allowedHostPrograms: [/usr/bin/logger]\n  allowedFields: [windows.credentialSpec, linux.intelRdt]\n",
		header + "platform: linux\nuntrusted:\n  stdio: {allowedPaths: []}\n  rootfs: {allowedSources: [/data/containerd/]}\n",
		"\t- x",
	} {
		f.Add([]byte(s))
	}
	starts := map[Platform]Input{}
	creates := map[Platform]Input{}
	// The pod's tenant (team-a) starts and creates a container, as CRI does, on each platform.
	w, _, l := fuzzOptionsPolicies(f)
	for platform, p := range map[Platform]*Policy{Windows: w, Linux: l} {
		starts[platform] = fuzzCall(f, p, platform, CallStart, tenantNS)
		creates[platform] = fuzzCall(f, p, platform, CallCreate, tenantNS)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			checkFileError(t, "Parse", data, err)
			return
		}
		for _, platform := range []Platform{Windows, Linux} {
			p, err := Compile(file, platform)
			if err != nil {
				checkFileError(t, "Compile("+string(platform)+")", data, err)
				if file.Platform != platform && file.Platform != "" {
					continue
				}
				if len(fieldErrors(err)) == 0 {
					t.Fatalf("Compile(%s) of a file Parse accepted fails without naming a field: %v", platform, err)
				}
				continue
			}
			if file.Platform != "" && file.Platform != platform {
				t.Fatalf("a %s policy compiled for %s", file.Platform, platform)
			}
			for _, in := range []Input{starts[platform], creates[platform]} {
				if in.Pod != nil {
					// The pins this policy gives the pod at start.
					sd := p.Evaluate(starts[platform])
					if !sd.Allowed {
						continue
					}
					in.Pod = sd.Pins
				}
				d := p.Evaluate(in)
				enforced := false
				for _, fd := range d.Denials {
					switch {
					case fd.Rule == RuleInternalError || fd.Rule == RuleInvalidInput:
						t.Fatalf("%s %s: %+v", platform, in.Call, fd)
					case fd.Rule == ruleHostPrograms.id || fd.Rule == ruleSpecFields.id,
						fd.Rule == ruleStdio.id && file.Untrusted.Stdio.AllowedPaths == nil,
						fd.Rule == ruleRootfs.id && file.Untrusted.Rootfs.AllowedSources == nil:
						// CRI's call runs no host program and sets no denied field; its
						// fifos or pipes and its snapshot mounts are what the defaults admit.
						t.Fatalf("%s %s: CRI's own call denied by a rule the file leaves at its default: %+v", platform, in.Call, fd)
					}
					enforced = enforced || !fd.Audit
				}
				if d.Allowed == enforced {
					t.Fatalf("%s %s: allowed=%v with enforced denials=%v", platform, in.Call, d.Allowed, enforced)
				}
				if !d.Allowed || d.Trusted || d.Mode != Enforce || file.Rules[ruleIsolation.id] == Audit {
					continue
				}
				if platform == Linux {
					if d.Options.GetTypeUrl() != TypeURLRuntimeOptions || in.Call == CallStart && (d.Delegate == nil || d.Delegate.Path != p.sandbox.Shim) {
						t.Fatalf("linux %s: an untrusted pod allowed outside the sandbox shim: options %v, delegate %v", in.Call, d.Options, d.Delegate)
					}
					continue
				}
				var o runhcsopts.Options
				if d.Options.GetTypeUrl() != TypeURLRunhcsOptions || proto.Unmarshal(d.Options.GetValue(), &o) != nil || o.SandboxIsolation != runhcsopts.Options_HYPERVISOR {
					t.Fatalf("windows %s: an untrusted pod allowed without Hyper-V: %v", in.Call, d.Options)
				}
			}
		}
	})
}
