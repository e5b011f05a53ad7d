//go:build !windows

package transport

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestWrapperAddressNeverTheDelegates(t *testing.T) {
	const address, ns, id = "/run/containerd/containerd.sock", "k8s.io", "abc123"
	// containerd's runc shim address for the same instance (pkg/shim CreateSocketAddress).
	runc := fmt.Sprintf("unix://%s/%x", defaultSocketDir, sha256.Sum256([]byte(filepath.Join(address, ns, id))))
	got := WrapperAddress(address, ns, id, "")
	if got == runc {
		t.Fatal("wrapper address equals the runc shim's")
	}
	if !strings.HasPrefix(got, "unix://"+defaultSocketDir+"/") || len(strings.TrimPrefix(got, "unix://")) > 107 {
		t.Fatalf("address %q", got)
	}
	if WrapperAddress(address, ns, id, "") != got {
		t.Fatal("address is not deterministic")
	}
	if WrapperAddress(address, ns, "other", "") == got {
		t.Fatal("two ids share an address")
	}
	if a := WrapperAddress(address, ns, id, "/run/custom/s"); !strings.HasPrefix(a, "unix:///run/custom/s/") {
		t.Fatalf("socket dir from BootstrapParams ignored: %q", a)
	}
}

func TestListenReplacesStaleRefusesLive(t *testing.T) {
	addr := "unix://" + filepath.Join(t.TempDir(), "w.sock")
	l, err := Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(strings.TrimPrefix(addr, "unix://"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	if _, err := Listen(addr); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second listen on a live socket: %v", err)
	}
	// Simulate a killed wrapper: the file stays, nobody answers.
	ul := l.(interface{ SetUnlinkOnClose(bool) })
	ul.SetUnlinkOnClose(false)
	l.Close()
	if _, err := Dial(addr, 100*time.Millisecond); err == nil {
		t.Fatal("closed socket still answers")
	}
	l2, err := Listen(addr)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
	if err := RemoveAddress(addr); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(strings.TrimPrefix(addr, "unix://")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket not removed: %v", err)
	}
}

func TestRemoveDeadSocket(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	l, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dead := filepath.Join(dir, "dead.sock")
	ld, err := net.Listen("unix", dead)
	if err != nil {
		t.Fatal(err)
	}
	ld.(*net.UnixListener).SetUnlinkOnClose(false)
	ld.Close()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := RemoveDeadSocket("unix://" + live); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("a served socket was removed: %v", err)
	}
	if err := RemoveDeadSocket("unix://" + dead); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("a socket nobody serves is still there: %v", err)
	}
	if err := RemoveDeadSocket("unix://" + regular); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
	if _, err := os.Stat(regular); err != nil {
		t.Fatalf("a regular file was removed: %v", err)
	}
	if err := RemoveDeadSocket("unix://" + filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("missing: %v", err)
	}
}
