//go:build linux

// Command containerd-shim-runhcs-v1 is a STAND-IN for hcsshim's runhcs shim. It is a Linux
// test program, NOT runhcs: it creates no container and runs no process. It exists so that
// the isoguard wrapper's Windows profile can be driven end to end by real containerd (1.7,
// 2.4) on Linux, and so the tests can see exactly what the delegate received.
//
// # Why a stand-in
//
// The real runhcs needs the Windows Host Compute Service (HCS, vmcompute.dll) for every
// Create: it builds only for Windows, and under wine (integration/windows,
// docs/windows-wine.md: wine has no vmcompute.dll) it starts and serves but cannot create a
// container. A test of "containerd -> isoguard ->
// runhcs" on Linux therefore needs a program that speaks runhcs's side of the protocol. The
// binary must be named containerd-shim-runhcs-v1 (harness.BuildBinary names it after this
// directory): the wrapper chooses its rule profile by the delegate's file name
// (shim/enforce.go PlatformOf: "runhcs" -> Windows profile) and the delegate's stdin format
// too (shim/stdin.go: *shim-runhcs-v1* gets a bare Any, as containerd 2.3+ would send).
//
// # runhcs behaviours reproduced
//
// Sources: hcsshim v0.15.0, cmd/containerd-shim-runhcs-v1/ (and v0.14.1 where stated).
//
//   - main.go: global flags -namespace, -address, -publish-binary, -id (all four required),
//     -bundle, -debug; commands start, delete and the hidden serve (-socket, -is-sandbox).
//     An unknown flag such as -info fails (runhcs has no -info; the wrapper then answers for
//     itself).
//   - start.go: reads the annotations of config.json in the working directory (the bundle);
//     io.kubernetes.cri.container-type and io.kubernetes.cri.sandbox-id must come together
//     (internal/oci/sandbox.go GetSandboxTypeAndID). container-type=container: dials the
//     sandbox's shim, calls Connect for its pid and answers the SANDBOX's address (starts
//     nothing). Otherwise (sandbox, or no annotation): a sandbox's id must equal its
//     sandbox-id; spawns `self --namespace NS --address ADDR --publish-binary BIN --id ID
//     serve --socket SOCKET [--is-sandbox]` in the bundle with the same stdin, stderr to
//     <bundle>/panic.log, waits until serve closes its stdout, writes `shim.pid` and
//     `address` into the bundle and prints the address without a newline: a plain address,
//     which containerd reads as task API version 2 over ttrpc. A start that fails after
//     spawning serve kills it.
//   - serve.go readOptions, as in v0.14.1 (bare Any only): empty stdin = default options;
//     bytes that are not a protobuf Any fail ("failed unmarshalling into Any"); an Any whose
//     type is unknown -- e.g. containerd 2.3+'s BootstrapParams read as an Any -- fails
//     ("failed unmarshalling by typeurl"); an Any of another known type makes v0.14.1 panic
//     on its unchecked cast, and fails here. (v0.15.0 also accepts BootstrapParams; the
//     stand-in deliberately keeps the older, stricter contract the wrapper must meet.) serve
//     then serves containerd.task.v2.Task and closes stdout once it serves.
//   - service_internal.go createInternal (~L87-130): Create's Options are decoded with
//     typeurl and an UNCHECKED cast to *options.Options, so any type URL other than
//     containerd.runhcs.v1.Options fails the Create; config.json is RE-READ from req.Bundle
//     (what the wrapper wrote is what counts); annotation expansion conflicts fail
//     (internal/oci/annotations.go ProcessAnnotations: io.microsoft.disable-unsafe-operations
//     vs its expansions, HostProcess enabled and disabled); SandboxIsolation=HYPERVISOR sets
//     spec.windows.hyperv; non-empty options that are not HYPERVISOR with an isolated spec
//     (windows.hyperv or linux set, internal/oci/util.go IsIsolated) fail with "invalid
//     runtime sandbox isolation (PROCESS) for hypervisor isolated OCI spec"; a
//     SandboxPlatform is validated against the spec (windows + a linux section fails).
//   - pod.go CreateTask / service_internal.go getTask: a serve started with -is-sandbox hosts
//     the pod: the sandbox task, then workload tasks, which need a running sandbox,
//     container-type=container and sandbox-id = the pod; a standalone serve knows only the
//     id it was started for.
//   - service_internal.go execInternal and task_hcs.go CreateExec: the exec's Spec.Value is
//     JSON of specs.Process ("request.Spec was not oci process"), terminal with stderr
//     fails, the task must be running, exec ids are unique.
//   - task_hcs.go DeleteExec: a running process cannot be deleted (FailedPrecondition); a
//     created one is force-exited with 0; deleting the init process force-exits the execs
//     with 1.
//   - service_internal.go connectInternal: ShimPid = TaskPid = the shim's own pid.
//   - service_internal.go shutdownInternal: only a Shutdown for the id serve was started for
//     ends the shim (a pod shim outlives its workload containers' Shutdowns).
//   - service_internal.go updateInternal: an Update without resources fails.
//   - delete.go: needs -bundle, copies <bundle>/panic.log to stderr, prints
//     DeleteResponse{ExitedAt: now, ExitStatus: 255}.
//
// # Not reproduced (stand-in conventions)
//
//   - No container and no process: pids are fake (2000000000 + n, above any Linux pid_max,
//     so no real process can ever be signalled through them). A process "runs" its args by
//     one rule: `<program> hello` exits with 0 right after Start, `<program> exit N` exits
//     with N, anything else runs until Kill, which ends it with 128+signal. Killing or
//     deleting the init process ends the task's execs.
//   - No output: the stdout/stderr fifos are opened for writing (a shim's side of them;
//     runhcs: cmd.NewUpstreamIO at Create/Exec), nothing is written, and they are closed
//     when the process exits, so the client's copy ends (ctr 2.x `task exec` waits for
//     that EOF). stdin is not read; log URIs (file://, binary://) are not opened.
//   - No events: runhcs publishes TaskCreate/TaskStart/TaskExit/... to $TTRPC_ADDRESS; the
//     stand-in publishes nothing. containerd answers Wait by calling the shim's Wait, and
//     `ctr run --rm`, `ctr run -d` + `ctr task exec/kill/delete` and the Go client need
//     nothing else (verified on containerd 1.7 and 2.4).
//   - The address is a unix socket, /run/containerd/s/<sha256 of a "runhcs-standin" salt,
//     containerd's address, namespace and id> (runhcs: the named pipe
//     \\.\pipe\ProtectedPrefix\Administrators\containerd-shim-<ns>-<id>-pipe); it is never
//     the wrapper's address. serve runs in its own session (Setsid). When serve fails before
//     serving, start fails with serve's message (runhcs's start copies that message to its
//     stderr but still prints the address of the shim that already exited).
//   - No shimdiag, ExtendedTask or log pipe. Pause, Resume and Checkpoint are not
//     implemented, as in runhcs (service_internal.go pauseInternal etc.).
//
// # Recording
//
// Every call is appended as one JSON line (package integration/standin, type Record) to
// $STANDIN_RECORD, else <bundle>/standin-record.jsonl: the start command's stdin, the
// options serve decoded, each Create (options, the config.json re-read from the bundle,
// rootfs, stdio, ids, the isolation runhcs would use), Exec (the process spec), Kill,
// Delete, Update, Stats, Shutdown and the delete command.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/isoguard/isoguard/integration/standin"
)

// CRI annotations (hcsshim pkg/annotations KubernetesContainerType / KubernetesSandboxID).
const (
	annContainerType = "io.kubernetes.cri.container-type"
	annSandboxID     = "io.kubernetes.cri.sandbox-id"
	typeSandbox      = "sandbox"
	typeContainer    = "container"
)

// socketDir is containerd's default directory for shim sockets.
const socketDir = "/run/containerd/s"

// maxStdin bounds what is read from stdin (containerd's own shims read at most 10 MiB).
const maxStdin = 10 << 20

type globalFlags struct {
	namespace, address, publishBinary, id, bundle string
	debug                                         bool
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-runhcs-v1 (isoguard test stand-in): %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var g globalFlags
	fs := flag.NewFlagSet("containerd-shim-runhcs-v1", flag.ContinueOnError)
	fs.StringVar(&g.namespace, "namespace", "", "namespace that owns the shim")
	fs.StringVar(&g.address, "address", "", "grpc address back to main containerd")
	fs.StringVar(&g.publishBinary, "publish-binary", "", "path to publish binary (used for publishing events)")
	fs.StringVar(&g.id, "id", "", "id of the task")
	fs.StringVar(&g.bundle, "bundle", "", "path to the bundle if not workdir")
	fs.BoolVar(&g.debug, "debug", false, "enable debug output in logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no command (start, delete)")
	}
	// runhcs's pre-run check (main.go app.Before).
	var missing []string
	for _, f := range []struct{ name, v string }{{"namespace", g.namespace}, {"address", g.address}, {"publish-binary", g.publishBinary}, {"id", g.id}} {
		if f.v == "" {
			missing = append(missing, "--"+f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s required", strings.Join(missing, ", "))
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "start":
		return startCommand(g, args)
	case "delete":
		return deleteCommand(g, args)
	case "serve":
		return serveCommand(g, rest)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// address is the stand-in's own socket for (namespace, id): runhcs derives its pipe from
// the same two; the salt keeps it apart from the wrapper's and the runc shim's sockets.
func (g globalFlags) addressFor(id string) string {
	sum := sha256.Sum256([]byte("runhcs-standin\x00" + g.address + "\x00" + g.namespace + "\x00" + id))
	return fmt.Sprintf("unix://%s/%x", socketDir, sum)
}

// record appends r to the record file. A failure is reported on stderr (serve's stderr
// is <bundle>/panic.log, which the delete command copies into containerd's log); start
// fails instead, since its stderr is part of its answer.
func record(bundle string, r standin.Record) error {
	err := standin.Append(standin.RecordPath(bundle), r)
	if err != nil {
		err = fmt.Errorf("stand-in: record %s: %w", r.Call, err)
		fmt.Fprintln(os.Stderr, err)
	}
	return err
}

// describeStdin says what start got on stdin, for the record: "empty", "any" (a bare
// protobuf Any with a type URL and no other field) or "other".
func describeStdin(data []byte) (format, typeURL string, opts json.RawMessage) {
	if len(data) == 0 {
		return "empty", "", nil
	}
	var a anypb.Any
	if err := proto.Unmarshal(data, &a); err != nil || a.GetTypeUrl() == "" || len(a.ProtoReflect().GetUnknown()) > 0 {
		return "other", a.GetTypeUrl(), nil
	}
	return "any", a.GetTypeUrl(), runhcsJSON(&a)
}

// runhcsJSON is the protojson form of a runhcs Options Any (nil for another type).
func runhcsJSON(a *anypb.Any) json.RawMessage {
	if messageName(a.GetTypeUrl()) != "containerd.runhcs.v1.Options" {
		return nil
	}
	var o runhcsopts.Options
	if err := proto.Unmarshal(a.GetValue(), &o); err != nil {
		return nil
	}
	b, err := protojson.MarshalOptions{UseProtoNames: false}.Marshal(&o)
	if err != nil {
		return nil
	}
	return b
}

func messageName(typeURL string) string {
	return typeURL[strings.LastIndexByte(typeURL, '/')+1:]
}

// sandboxTypeAndID is internal/oci/sandbox.go GetSandboxTypeAndID.
func sandboxTypeAndID(a map[string]string) (string, string, error) {
	ct := ""
	if t, ok := a[annContainerType]; ok {
		switch t {
		case typeContainer, typeSandbox:
			ct = t
		default:
			return "", "", fmt.Errorf("invalid '%s': '%s'", annContainerType, t)
		}
	}
	id := a[annSandboxID]
	switch ct {
	case typeContainer, typeSandbox:
		if id == "" {
			return "", "", fmt.Errorf("cannot specify '%s' without '%s'", annContainerType, annSandboxID)
		}
	default:
		if id != "" {
			return "", "", fmt.Errorf("cannot specify '%s' without '%s'", annSandboxID, annContainerType)
		}
	}
	return ct, id, nil
}

func specAnnotations(bundle string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var s struct {
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("failed to deserialize valid OCI spec: %w", err)
	}
	return s.Annotations, nil
}

// startCommand is start.go. The record is written before the answer: nothing may follow
// the address on stdout, and containerd (and the wrapper) read stdout and stderr combined.
func startCommand(g globalFlags, args []string) error {
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(os.Stdin, maxStdin))
	if err != nil {
		return err
	}
	rec := standin.Record{Call: standin.CallStart, Namespace: g.namespace, ID: g.id, Bundle: cwd, Args: args}
	rec.StdinFormat, rec.OptionsTypeURL, rec.Options = describeStdin(data)
	address, served, err := startShim(g, cwd, data)
	if err != nil {
		rec.Error = err.Error()
	}
	if rerr := record(cwd, rec); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		// runhcs's start kills the serve it spawned when it fails afterwards.
		if served > 0 {
			_ = syscall.Kill(served, syscall.SIGKILL)
		}
		return err
	}
	_, err = fmt.Fprint(os.Stdout, address)
	return err
}

// startShim answers the address containerd must use: the sandbox's shim for a workload
// container, else a new serve (served is its pid; it is killed when start fails after it).
func startShim(g globalFlags, cwd string, stdin []byte) (address string, served int, err error) {
	defer func() {
		if err != nil && served > 0 {
			_ = syscall.Kill(served, syscall.SIGKILL)
			served = 0
		}
	}()
	a, err := specAnnotations(cwd)
	if err != nil {
		return "", 0, err
	}
	ct, sbid, err := sandboxTypeAndID(a)
	if err != nil {
		return "", 0, err
	}
	var pid int
	if ct == typeContainer {
		// Answer the hosting shim's address after asking it for its pid.
		address = g.addressFor(sbid)
		pid, err = connectPid(address, sbid)
		if err != nil {
			return "", 0, fmt.Errorf("failed to get shim pid from hosting shim: %w", err)
		}
	} else {
		isSandbox := ct == typeSandbox
		if isSandbox && g.id != sbid {
			return "", 0, fmt.Errorf("'id' and '%s' must match for '%s=%s'", annSandboxID, annContainerType, typeSandbox)
		}
		address = g.addressFor(g.id)
		pid, err = spawnServe(g, cwd, stdin, address, isSandbox)
		if err != nil {
			return "", 0, err
		}
		served = pid
	}
	if err := writeFileAtomic(filepath.Join(cwd, "shim.pid"), []byte(strconv.Itoa(pid))); err != nil {
		return "", served, err
	}
	if err := writeFileAtomic(filepath.Join(cwd, "address"), []byte(address)); err != nil {
		return "", served, err
	}
	return address, served, nil
}

// spawnServe starts serve like runhcs's start: same stdin, stderr to panic.log, and waits
// until serve closes its stdout. serve writes an error there when it cannot serve.
func spawnServe(g globalFlags, bundle string, stdin []byte, address string, isSandbox bool) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	panicLog, err := os.Create(filepath.Join(bundle, "panic.log"))
	if err != nil {
		w.Close()
		return 0, err
	}
	defer panicLog.Close()
	args := []string{self,
		"--namespace", g.namespace,
		"--address", g.address,
		"--publish-binary", g.publishBinary,
		"--id", g.id,
		"serve",
		"--socket", address,
	}
	if isSandbox {
		args = append(args, "--is-sandbox")
	}
	cmd := &exec.Cmd{
		Path:        self,
		Args:        args,
		Env:         os.Environ(),
		Dir:         bundle,
		Stdin:       bytes.NewReader(stdin),
		Stdout:      w,
		Stderr:      panicLog,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, err
	}
	w.Close()
	out, err := io.ReadAll(r) // until serve closes stdout (serving) or exits
	if err == nil && len(bytes.TrimSpace(out)) > 0 {
		err = errors.New(strings.TrimSpace(string(out)))
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, fmt.Errorf("serve failed: %w", err)
	}
	pid := cmd.Process.Pid
	// serve outlives start; the stdin copier ended when serve read all of it.
	_ = cmd.Process.Release()
	return pid, nil
}

func connectPid(address, id string) (int, error) {
	path := strings.TrimPrefix(address, "unix://")
	conn, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		return 0, err
	}
	cl := ttrpc.NewClient(conn)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := taskv2.NewTTRPCTaskClient(cl).Connect(ctx, &taskv2.ConnectRequest{ID: id})
	if err != nil {
		return 0, err
	}
	return int(resp.GetShimPid()), nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// deleteCommand is delete.go.
func deleteCommand(g globalFlags, args []string) error {
	if g.bundle == "" {
		return errors.New("bundle is required")
	}
	if b, err := os.ReadFile(filepath.Join(g.bundle, "panic.log")); err == nil && len(b) > 0 {
		if len(b) > 1<<20 {
			b = b[:1<<20]
		}
		fmt.Fprintf(os.Stderr, "found shim panic logs during delete: %s\n", b)
	}
	status := uint32(255)
	_ = record(g.bundle, standin.Record{Call: standin.CallDeleteCommand, Namespace: g.namespace, ID: g.id, Bundle: g.bundle, Args: args, ExitStatus: &status})
	data, err := proto.Marshal(&taskv2.DeleteResponse{ExitedAt: timestamppb.New(time.Now()), ExitStatus: status})
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(data)
	return err
}
