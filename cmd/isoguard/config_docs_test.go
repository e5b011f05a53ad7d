package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/isoguard/isoguard/policy"
)

// The documentation shows what `isoguard config` prints and which rule answers which
// threat; these tests keep it true.

const docsDir = "../../docs"

// outputMarker precedes a fenced block that must equal the output of a command.
var outputMarker = regexp.MustCompile("(?s)<!-- output of: isoguard ([^>]*?) -->\\s*```[a-z]*\n(.*?)```")

func TestDocsShowCurrentOutput(t *testing.T) {
	seen := 0
	for _, name := range []string{"containerd-config.md", "install-windows.md"} {
		data, err := os.ReadFile(filepath.Join(docsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range outputMarker.FindAllStringSubmatch(string(data), -1) {
			seen++
			args := strings.Fields(m[1])
			code, out, errOut := cfgRun(args...)
			if code != exitOK {
				t.Errorf("%s: isoguard %s: exit %d: %s", name, m[1], code, errOut)
				continue
			}
			if out != m[2] {
				t.Errorf("%s shows an outdated output of `isoguard %s`; replace the block with:\n%s", name, m[1], out)
			}
		}
	}
	if seen < 4 {
		t.Errorf("found %d output blocks in the docs, want at least 4 (markers removed?)", seen)
	}
}

// generatedMarker encloses markdown that must equal the output of a command (rendered, not
// fenced: the field table).
var generatedMarker = regexp.MustCompile("(?s)<!-- begin output of: isoguard ([^>]*?) -->\n(.*?)<!-- end output -->")

// TestDocsShowCurrentTables keeps generated markdown in the docs current; with -update-config
// it rewrites it.
func TestDocsShowCurrentTables(t *testing.T) {
	path := filepath.Join(docsDir, "policy.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	doc := generatedMarker.ReplaceAllStringFunc(string(data), func(block string) string {
		m := generatedMarker.FindStringSubmatch(block)
		seen++
		code, out, errOut := cfgRun(strings.Fields(m[1])...)
		if code != exitOK {
			t.Errorf("isoguard %s: exit %d: %s", m[1], code, errOut)
			return block
		}
		if out != m[2] && !*cfgUpdate {
			t.Errorf("%s shows an outdated output of `isoguard %s` (run `go test ./cmd/isoguard -run %s -update-config`)", path, m[1], t.Name())
		}
		return "<!-- begin output of: isoguard " + m[1] + " -->\n" + out + "<!-- end output -->"
	})
	if seen == 0 {
		t.Fatalf("no generated table in %s (marker removed?)", path)
	}
	if *cfgUpdate && doc != string(data) {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// threatRows reads the rows "| T<n> | ... |" of docs/threat-model.md.
func threatRows(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(docsDir, "threat-model.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	row := regexp.MustCompile(`^\| (T[0-9]+) \|`)
	for _, line := range strings.Split(string(data), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			if _, dup := rows[m[1]]; dup {
				t.Errorf("threat-model.md: %s has two rows", m[1])
			}
			rows[m[1]] = line
		}
	}
	return rows
}

func TestThreatModelNamesEveryRule(t *testing.T) {
	rows := threatRows(t)
	for i := 1; i <= 15; i++ {
		if _, ok := rows[fmt.Sprintf("T%d", i)]; !ok {
			t.Errorf("threat-model.md has no row for T%d", i)
		}
	}
	for _, r := range policy.Rules() {
		for _, threat := range r.Threats {
			row, ok := rows[threat]
			if !ok {
				t.Errorf("rule %s answers %s, which threat-model.md has no row for", r.ID, threat)
				continue
			}
			if !strings.Contains(row, "`"+r.ID+"`") {
				t.Errorf("threat-model.md row %s does not name rule %s, which the registry says answers it", threat, r.ID)
			}
		}
	}
	for _, id := range []string{policy.RuleInvalidInput, policy.RuleInternalError} {
		if !strings.Contains(rows["T13"], "`"+id+"`") {
			t.Errorf("threat-model.md row T13 does not name %s", id)
		}
	}
	// Every rule-like ID the document names exists.
	data, _ := os.ReadFile(filepath.Join(docsDir, "threat-model.md"))
	known := map[string]bool{}
	for _, r := range policy.Rules() {
		known[r.ID] = true
	}
	for _, id := range regexp.MustCompile("`(untrusted\\.[a-z-]+)`").FindAllStringSubmatch(string(data), -1) {
		if !known[id[1]] && !strings.HasPrefix(id[1], "untrusted.limits") {
			t.Errorf("threat-model.md names %s, which is no rule of the registry", id[1])
		}
	}
}
