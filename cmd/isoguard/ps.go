package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"text/tabwriter"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/enforce"
	"github.com/isoguard/isoguard/internal/proc"
)

// taskStateDir is where containerd keeps task bundles below its state directory
// (<state>/io.containerd.runtime.v2.task/<namespace>/<id>).
const taskStateDir = "io.containerd.runtime.v2.task"

// wrapperBinary is the shim's file name, for records that do not name their binary.
const wrapperBinary = "containerd-shim-isoguard-v1"

// defaultStateDir is containerd's default state directory on this OS.
func defaultStateDir() string {
	if runtime.GOOS == "windows" {
		pd := os.Getenv("ProgramData")
		if pd == "" {
			pd = `C:\ProgramData`
		}
		return filepath.Join(pd, "containerd", "state")
	}
	return "/run/containerd"
}

// wrapperRow is one wrapper instance as `isoguard ps` shows it: what the wrapper recorded
// in its bundle (isoguard-state.json), with the pins its start decided.
type wrapperRow struct {
	Namespace     string `json:"namespace"` // containerd namespace
	ID            string `json:"id"`        // the pod sandbox's (or standalone container's) id
	Sandbox       bool   `json:"sandbox"`
	KubeNamespace string `json:"kubernetesNamespace,omitempty"`
	KubePod       string `json:"kubernetesPod,omitempty"`
	Tenant        string `json:"tenant"`
	Trusted       bool   `json:"trusted"`
	Isolation     string `json:"isolation"`
	Delegate      string `json:"delegate"`
	User          string `json:"user,omitempty"` // the user the policy forces, if any
	Pid           int    `json:"pid"`
	DelegatePid   int    `json:"delegatePid,omitempty"`
	Live          bool   `json:"live"`
	Bundle        string `json:"bundle"`
	Error         string `json:"error,omitempty"` // a record that cannot be read
}

func runPs(args []string, stdout, stderr io.Writer) int {
	fs := newCommand("isoguard ps", "[--state DIR] [--all] [--json]\n\nLists the isoguard wrappers of this node, one per pod (or standalone container), from\ntheir own records: pod, tenant, isolation, delegate and the user the policy forces.\ncontainerd's stored spec (crictl inspect, kubectl) shows the spec before isoguard's\nchanges; this is what runs.", stderr)
	state := fs.String("state", defaultStateDir(), "containerd's state directory (`state` in its config)")
	all := fs.Bool("all", false, "also list records whose wrapper is no longer running")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, done := fs.parse(args, stdout); done {
		return code
	}
	rows, err := wrappers(*state)
	if err != nil {
		fmt.Fprintf(stderr, "isoguard ps: %v\n", err)
		return exitFail
	}
	if !*all {
		live := rows[:0]
		for _, r := range rows {
			if r.Live {
				live = append(live, r)
			}
		}
		rows = live
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rows)
		return exitOK
	}
	printWrappers(stdout, rows, *all)
	return exitOK
}

// wrappers reads every wrapper record below containerd's state directory.
func wrappers(state string) ([]wrapperRow, error) {
	root := filepath.Join(state, taskStateDir)
	nss, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return []wrapperRow{}, nil // no task has ever run
		}
		return nil, fmt.Errorf("containerd state %s: %w", state, err)
	}
	rows := []wrapperRow{}
	for _, ns := range nss {
		tasks, err := os.ReadDir(filepath.Join(root, ns.Name()))
		if err != nil {
			continue
		}
		for _, task := range tasks {
			dir := filepath.Join(root, ns.Name(), task.Name())
			if _, err := os.Stat(filepath.Join(dir, bundle.RecordFile)); err != nil {
				continue // not a bundle isoguard started (a joined container, another runtime)
			}
			rows = append(rows, wrapperAt(dir, ns.Name(), task.Name()))
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Namespace != rows[j].Namespace {
			return rows[i].Namespace < rows[j].Namespace
		}
		return rows[i].ID < rows[j].ID
	})
	return rows, nil
}

func wrapperAt(dir, ns, id string) wrapperRow {
	row := wrapperRow{Namespace: ns, ID: id, Bundle: dir}
	rec, err := bundle.ReadRecord(dir)
	if err != nil {
		row.Error = err.Error()
		return row
	}
	row.ID, row.Sandbox, row.Pid = rec.ID, rec.Sandbox, rec.Pid
	row.Delegate, row.DelegatePid = rec.Delegate.Path, rec.Delegate.Pid
	binary := rec.Binary
	if binary == "" {
		binary = wrapperBinary
	}
	row.Live = proc.Matches(rec.Pid, binary, rec.ID)
	pins, err := enforce.Pins(rec.Pins)
	switch {
	case err != nil:
		row.Error = err.Error()
	case pins != nil:
		row.Tenant, row.Trusted, row.Isolation, row.User = pins.Tenant, pins.Trusted, pins.Isolation, pins.User
		row.KubeNamespace, row.KubePod = pins.KubeNamespace, pins.KubePod
	}
	return row
}

func printWrappers(w io.Writer, rows []wrapperRow, all bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "NAMESPACE\tPOD\tID\tTENANT\tTRUSTED\tISOLATION\tDELEGATE\tUSER\tPID"
	if all {
		header += "\tLIVE"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		pod := "-"
		if r.KubePod != "" {
			pod = r.KubeNamespace + "/" + r.KubePod
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\t%s",
			r.Namespace, pod, shortID(r.ID), dash(r.Tenant), r.Trusted, dash(r.Isolation),
			dash(filepath.Base(r.Delegate)), dash(r.User), strconv.Itoa(r.Pid))
		if all {
			line += "\t" + strconv.FormatBool(r.Live)
		}
		if r.Error != "" {
			line += "\t(" + r.Error + ")"
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

func shortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}

func dash(s string) string {
	if s == "" || s == "." {
		return "-"
	}
	return s
}
