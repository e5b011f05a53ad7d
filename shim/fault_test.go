//go:build !windows

package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

	"github.com/isoguard/isoguard/shim/hooks"
)

// fakeDelegate writes a shell script standing in for a delegate shim (a test double, not
// a model of any real shim) into a directory of its own and returns its path.
func fakeDelegate(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "containerd-shim-fake-v1")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAwaitEndServeFailure (defect: a failing ttrpc server ended the daemon with exit
// status 0): a Serve error other than the server's own closing ends the daemon with an
// error, which is exit status 1; the server's closing is a normal end.
func TestAwaitEndServeFailure(t *testing.T) {
	d := &daemon{f: Flags{Socket: "unix:///run/test/w.sock"}, delegateGone: make(chan struct{})}
	served := make(chan error, 1)
	served <- fmt.Errorf("accept unix /run/test/w.sock: %w", syscall.EBADF)
	err := d.awaitEnd(context.Background(), served, make(chan os.Signal))
	if err == nil || !errors.Is(err, syscall.EBADF) {
		t.Fatalf("awaitEnd after a failed Serve: %v, want the failure", err)
	}
	if code := exitCode(io.Discard, err); code != 1 {
		t.Fatalf("exit status %d, want 1", code)
	}
	served <- ttrpc.ErrServerClosed
	if err := d.awaitEnd(context.Background(), served, make(chan os.Signal)); err != nil {
		t.Fatalf("awaitEnd after the server closed: %v, want a normal end", err)
	}
}

// TestDelegateCommandsBounded (defect: the delegate's start, delete and -info waited for
// their output pipes until every process holding them was gone): a delegate whose commands
// leave a grandchild holding stdout and stderr (here `sleep 30 &`) must not keep the
// wrapper waiting: each returns within waitDelay of the delegate's exit.
func TestDelegateCommandsBounded(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "grandchildren")
	path := fakeDelegate(t, fmt.Sprintf(`sleep 30 &
echo $! >> %s
case "$*" in *start) printf 'unix:///run/test/fake.sock' ;; esac
exit 0
`, pids))
	t.Cleanup(func() {
		for _, f := range strings.Fields(readFileString(pids)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	f := testFlags()
	f.Bundle = dir
	ctx := context.Background()
	cmds := map[string]func() error{
		"start":  func() error { _, err := runDelegateStart(ctx, path, f, dir, nil); return err },
		"delete": func() error { _, err := runDelegateDelete(ctx, path, f, io.Discard); return err },
		"-info":  func() error { _, err := runDelegateInfo(ctx, path, nil); return err },
	}
	type result struct {
		name string
		took time.Duration
		err  error
	}
	done := make(chan result, len(cmds))
	for name, run := range cmds {
		go func() {
			begin := time.Now()
			err := run()
			done <- result{name, time.Since(begin), err}
		}()
	}
	limit := waitDelay + 3*time.Second
	timeout := time.After(limit)
	for range cmds {
		select {
		case r := <-done:
			t.Logf("%s returned after %v: %v", r.name, r.took.Round(time.Millisecond), r.err)
		case <-timeout:
			t.Fatalf("a delegate command was still waiting for its output after %v", limit)
		}
	}
}

func readFileString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// TestServeSIGTERMWhileDelegateStarts (defect: the daemon installed its SIGTERM handler
// only once serving, so a SIGTERM while the delegate started killed it outright and left
// the delegate running): SIGTERM arrives while the delegate's start runs; the daemon
// waits for that start, cleans the delegate up (its delete runs) and ends with an error
// that names the signal, reported to `start`; its socket is removed.
func TestServeSIGTERMWhileDelegateStarts(t *testing.T) {
	log := filepath.Join(t.TempDir(), "delegate.log")
	path := fakeDelegate(t, fmt.Sprintf(`case "$*" in
*start) echo start >> %[1]s; sleep 1; printf 'unix:///run/test/fake-%[2]d.sock' ;;
*delete) echo delete >> %[1]s ;;
esac
`, log, os.Getpid()))
	// The test process must survive a SIGTERM whatever serve does with it.
	own := make(chan os.Signal, 1)
	signal.Notify(own, syscall.SIGTERM)
	defer signal.Stop(own)

	dir := t.TempDir()
	writeBundleSpec(t, dir, nil)
	t.Chdir(dir)
	f := testFlags()
	f.Socket = "unix://" + filepath.Join(t.TempDir(), "w.sock")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	served := make(chan error, 1)
	go func() {
		served <- serve(context.Background(), f, bytes.NewReader(nil), w, stubHooks{delegate: hooks.Delegate{Path: path}})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readFileString(log), "start") {
		if time.Now().After(deadline) {
			t.Fatal("the delegate's start did not run")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not end on a SIGTERM received while its delegate started")
	}
	if !errdefs.IsAborted(err) || !strings.Contains(err.Error(), "stopped by terminated while the delegate started") {
		t.Fatalf("serve: %v, want stopped by the signal", err)
	}
	if got := readFileString(log); !strings.Contains(got, "delete") {
		t.Fatalf("the delegate was not cleaned up (its delete did not run): %q", got)
	}
	w.Close()
	report, _ := io.ReadAll(r)
	if !strings.Contains(string(report), "stopped by terminated") {
		t.Fatalf("readiness report %q does not name the signal", report)
	}
	if _, err := os.Stat(strings.TrimPrefix(f.Socket, "unix://")); err == nil {
		t.Fatal("socket left behind")
	}
}

// gatedHooks is stubHooks whose start hook waits until release is closed.
type gatedHooks struct {
	stubHooks
	entered, release chan struct{}
}

func (h gatedHooks) Start(ctx context.Context, inst *hooks.Instance, req *hooks.StartRequest) error {
	close(h.entered)
	<-h.release
	return h.stubHooks.Start(ctx, inst, req)
}

// TestServeSIGTERMBeforeDelegateStarts: a SIGTERM received before the delegate starts
// (here while the start hook decides) ends the daemon without starting the delegate.
func TestServeSIGTERMBeforeDelegateStarts(t *testing.T) {
	log := filepath.Join(t.TempDir(), "delegate.log")
	path := fakeDelegate(t, fmt.Sprintf("echo \"$*\" >> %s\n", log))
	own := make(chan os.Signal, 1)
	signal.Notify(own, syscall.SIGTERM)
	defer signal.Stop(own)

	dir := t.TempDir()
	writeBundleSpec(t, dir, nil)
	t.Chdir(dir)
	f := testFlags()
	f.Socket = "unix://" + filepath.Join(t.TempDir(), "w.sock")
	h := gatedHooks{stubHooks: stubHooks{delegate: hooks.Delegate{Path: path}}, entered: make(chan struct{}), release: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- serve(context.Background(), f, bytes.NewReader(nil), nopWriteCloser{io.Discard}, h) }()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the start hook was not called")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Let the signal be delivered before the hook returns.
	select {
	case <-own:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM not delivered")
	}
	close(h.release)
	var err error
	select {
	case err = <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not end on a SIGTERM received before its delegate started")
	}
	if !errdefs.IsAborted(err) || !strings.Contains(err.Error(), "stopped by terminated before the delegate started") {
		t.Fatalf("serve: %v, want stopped before the delegate started", err)
	}
	if got := readFileString(log); got != "" {
		t.Fatalf("the delegate ran: %q", got)
	}
	if _, err := os.Stat(strings.TrimPrefix(f.Socket, "unix://")); err == nil {
		t.Fatal("socket left behind")
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
