package policy

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The matchers of names.go against the expressions they replace: every string up to four
// characters over an alphabet with every character class they treat differently, the
// boundary lengths, and random longer strings.
func TestNameMatchersAgreeWithExpressions(t *testing.T) {
	cases := []struct {
		name  string
		match func(string) bool
		re    *regexp.Regexp
		max   int // length limit the expression does not express
		seeds []string
	}{
		{"k8s namespace", isK8sNamespace, regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`), 0, nil},
		{"containerd namespace", isContainerdNamespace, regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`), 76, nil},
		{"rule ID", isRuleID, regexp.MustCompile(`^untrusted\.[a-z]+(-[a-z]+)*$`), 0, []string{"untrusted.", "untrusted", "untrusted.a", "Untrusted.a"}},
		{"threat ID", isThreatID, regexp.MustCompile(`^T[0-9]+$`), 0, []string{"T", "T1", "t1", "T12a"}},
	}
	alphabet := []byte("aZ9-._+/T \x00é")
	for _, c := range cases {
		check := func(s string) {
			want := c.re.MatchString(s) && (c.max == 0 || len(s) <= c.max)
			if got := c.match(s); got != want {
				t.Errorf("%s(%q) = %v, the expression says %v", c.name, s, got, want)
			}
		}
		var gen func(prefix string, n int)
		gen = func(prefix string, n int) {
			check(prefix)
			if n == 0 {
				return
			}
			for _, b := range alphabet {
				gen(prefix+string(b), n-1)
			}
		}
		for _, seed := range append(c.seeds, "") {
			gen(seed, 3)
		}
		for _, n := range []int{62, 63, 64, 75, 76, 77} {
			check(strings.Repeat("a", n))
			check("untrusted." + strings.Repeat("a", n))
			check("a" + strings.Repeat("-", n-2) + "a")
		}
		r := rand.New(rand.NewPCG(1, 2))
		for range 20000 {
			b := make([]byte, r.IntN(90))
			for i := range b {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
			check(string(b))
			check("untrusted." + string(b))
		}
	}
}
