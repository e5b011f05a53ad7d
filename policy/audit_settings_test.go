package policy

import (
	"strings"
	"testing"
)

func TestAuditSettings(t *testing.T) {
	good := "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\naudit:\n  path: /var/log/isoguard/audit.log\n  maxSizeMB: 50\n  maxBackups: 3\n"
	f, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if f.Audit.Path != "/var/log/isoguard/audit.log" || f.Audit.MaxSizeMB != 50 || f.Audit.MaxBackups != 3 {
		t.Fatalf("audit settings %+v", f.Audit)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"audit:\n  path: relative/audit.log\n", "line 4: field audit.path"},
		{"audit:\n  maxSizeMB: -1\n", "audit.maxSizeMB"},
		{"audit:\n  maxBackups: 5000\n", "audit.maxBackups"},
		{"audit:\n  rotate: daily\n", "rotate"},
	} {
		_, err := Parse([]byte("apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\n" + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error naming %q", tc.yaml, err, tc.want)
		}
	}
}
