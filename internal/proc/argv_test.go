package proc

import "testing"

func TestArgvMatches(t *testing.T) {
	const shim = "/usr/local/bin/containerd-shim-runc-v2"
	for _, tc := range []struct {
		name string
		argv []string
		want bool
	}{
		{"containerd's argv", []string{shim, "-namespace", "k8s.io", "-id", "abc", "-address", "/run/c.sock"}, true},
		{"flag=value", []string{shim, "-id=abc", "delete"}, true},
		{"other id", []string{shim, "-id", "abcd"}, false},
		{"id inside another argument", []string{shim, "-id", "other", "-bundle", "/run/x/abc"}, false},
		{"id as a value of another flag", []string{shim, "-namespace", "abc", "-id", "x"}, false},
		{"other binary", []string{"/usr/bin/sleep", "-id", "abc"}, false},
		{"binary name inside a path", []string{"/opt/containerd-shim-runc-v2-old/bin/tool", "-id", "abc"}, false},
		{"no id flag", []string{shim, "abc"}, false},
		{"dangling -id", []string{shim, "-id"}, false},
		{"empty", nil, false},
	} {
		if got := argvMatches(tc.argv, shim, "abc"); got != tc.want {
			t.Errorf("%s: argvMatches(%q) = %v, want %v", tc.name, tc.argv, got, tc.want)
		}
	}
	runhcs := []string{`C:\bin\containerd-shim-runhcs-v1.exe`, "--namespace", "k8s.io", "--id", "abc", "serve", "--socket", `\\.\pipe\x`}
	if !argvMatches(runhcs, `C:\Program Files\containerd\containerd-shim-runhcs-v1.exe`, "abc") {
		t.Error("runhcs's serve command line")
	}
	if !argvMatches([]string{`C:\x\CONTAINERD-SHIM-RUNHCS-V1.EXE`, "-id", "a"}, "containerd-shim-runhcs-v1.exe", "a") {
		t.Error("Windows base names compare case-insensitively")
	}
}

func TestShimArgvMatches(t *testing.T) {
	const shim = "/usr/local/bin/containerd-shim-runc-v2"
	daemon := []string{shim, "-namespace", "k8s.io", "-id", "abc", "-address", "/run/containerd/containerd.sock", "-debug"}
	start := []string{shim, "-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", "abc", "start"}
	for _, tc := range []struct {
		name string
		argv []string
		want bool
	}{
		{"the runc shim's daemon", daemon, true},
		{"its start", start, true},
		{"flag=value", []string{shim, "--namespace=k8s.io", "-id=abc", "-address=/run/containerd/containerd.sock"}, true},
		{"other namespace", []string{shim, "-namespace", "default", "-id", "abc", "-address", "/run/containerd/containerd.sock"}, false},
		{"other containerd", []string{shim, "-namespace", "k8s.io", "-id", "abc", "-address", "/run/other/containerd.sock"}, false},
		{"no address", []string{shim, "-namespace", "k8s.io", "-id", "abc"}, false},
		{"other id", []string{shim, "-namespace", "k8s.io", "-id", "abcd", "-address", "/run/containerd/containerd.sock"}, false},
		{"other binary", append([]string{"/usr/bin/containerd-shim-isoguard-v1"}, daemon[1:]...), false},
	} {
		if got := shimArgvMatches(tc.argv, shim, "k8s.io", "abc", "/run/containerd/containerd.sock"); got != tc.want {
			t.Errorf("%s: shimArgvMatches(%q) = %v, want %v", tc.name, tc.argv, got, tc.want)
		}
	}
}
