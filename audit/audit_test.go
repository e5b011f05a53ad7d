package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/isoguard/isoguard/policy"
)

func record(i int) *Record {
	return &Record{
		Time: time.Now().UTC(), Call: "create", Namespace: "k8s.io", ID: fmt.Sprintf("c%d", i),
		Tenant: "team-a", Mode: "enforce", Outcome: OutcomeMutated, Rules: []string{"untrusted.user"},
		Mutations: []policy.Mutation{{Rule: "untrusted.user", Field: "process.user.username", Old: "ContainerAdministrator", New: "ContainerUser"}},
		Policy:    "/etc/isoguard/policy.yaml", Pid: os.Getpid(),
	}
}

// readAll returns every record in path and its rotated backups.
func readAll(t *testing.T, path string, backups int) []Record {
	t.Helper()
	var out []Record
	for i := backups; i >= 0; i-- {
		p := path
		if i > 0 {
			p = path + "." + strconv.Itoa(i)
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: torn or invalid line %q: %v", p, sc.Text(), err)
			}
			out = append(out, r)
		}
		f.Close()
	}
	return out
}

func TestWriteAndRotate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	path := filepath.Join(dir, "audit.log")
	w := NewWriter(path, 2048, 3)
	for i := range 40 {
		if err := w.Write(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path, path + ".1", path + ".2", path + ".3"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s missing: %v", p, err)
		}
		if st.Size() > 2048 {
			t.Fatalf("%s is %d bytes, over the 2048 limit", p, st.Size())
		}
		if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", p, st.Mode())
		}
	}
	if _, err := os.Stat(path + ".4"); err == nil {
		t.Fatal("more backups than configured")
	}
	if st, _ := os.Stat(dir); runtime.GOOS != "windows" && st.Mode().Perm() != 0o700 {
		t.Fatalf("audit dir mode %v", st.Mode())
	}
	recs := readAll(t, path, 3)
	// The newest records survive, in order.
	last := recs[len(recs)-1]
	if last.ID != "c39" || last.Mutations[0].New != "ContainerUser" {
		t.Fatalf("last record %+v", last)
	}
	for i := 1; i < len(recs); i++ {
		a, _ := strconv.Atoi(recs[i-1].ID[1:])
		b, _ := strconv.Atoi(recs[i].ID[1:])
		if b != a+1 {
			t.Fatalf("records out of order or lost: %s then %s", recs[i-1].ID, recs[i].ID)
		}
	}
}

// TestConcurrentProcesses: several wrapper processes append to one file while it rotates;
// no line is torn and no record is lost.
func TestConcurrentProcesses(t *testing.T) {
	if os.Getenv("AUDIT_CHILD_PATH") != "" {
		w := NewWriter(os.Getenv("AUDIT_CHILD_PATH"), 4096, 1000)
		for i := range 50 {
			if err := w.Write(record(i)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	var cmds []*exec.Cmd
	for range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentProcesses$")
		cmd.Env = append(os.Environ(), "AUDIT_CHILD_PATH="+path)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	recs := readAll(t, path, 1000)
	if len(recs) != 200 {
		t.Fatalf("%d records, want 200", len(recs))
	}
	perPid := map[int]int{}
	for _, r := range recs {
		perPid[r.Pid]++
	}
	if len(perPid) != 4 {
		t.Fatalf("records from %d processes, want 4", len(perPid))
	}
}
