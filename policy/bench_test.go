package policy

import "testing"

// BenchmarkEvaluateTypicalPod: the Create of a workload container of an untrusted CRI pod
// on Windows (CRI's process options, a service account token and the termination log
// mounted, ContainerAdministrator as user): isolation, user and annotation rewrites, every
// check. Target: <= 50 us and <= 100 allocs/op.
func BenchmarkEvaluateTypicalPod(b *testing.B) {
	p := (policyCache{}).get(b, "windows")
	in := winCreate(b)
	in.Spec.Process.User.Username = "ContainerAdministrator"
	b.ReportAllocs()
	for b.Loop() {
		d := p.Evaluate(in)
		if !d.Allowed || len(d.Mutations) != 4 {
			b.Fatalf("%+v", d)
		}
	}
}

// BenchmarkEvaluateLinuxPod: the same on Linux (12 mounts, device cgroup rules).
func BenchmarkEvaluateLinuxPod(b *testing.B) {
	p := (policyCache{}).get(b, "linux")
	in := linuxCreate(b)
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Evaluate(in); !d.Allowed {
			b.Fatalf("%+v", d)
		}
	}
}

// BenchmarkEvaluateExec: an Exec rewritten from ContainerAdministrator.
func BenchmarkEvaluateExec(b *testing.B) {
	p := (policyCache{}).get(b, "windows")
	in := winExec("ContainerAdministrator")
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Evaluate(in); !d.Allowed {
			b.Fatalf("%+v", d)
		}
	}
}
