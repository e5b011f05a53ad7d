// Command tool is the only binary of the integration-test image (/bin/tool).
//
// It is a multi-call program: the subcommand is the base name of argv[0] when that is a
// subcommand (the image carries /bin/NAME -> tool links), otherwise argv[1].
//
//	tool hello            prints "hello from isoguard"
//	tool sleep SECONDS    sleeps (exits 143 on SIGTERM, 130 on SIGINT)
//	tool id               prints "uid=N gid=N"
//	tool cat FILE         copies FILE to stdout
//	tool ls DIR           prints the entries of DIR, one per line (directories end in "/")
//	tool write FILE TEXT  writes TEXT (no newline added) to FILE
//	tool exit N           exits with status N
//	tool env KEY          prints the value of KEY; exit 1 if unset
//
// Build it static: CGO_ENABLED=0 GOOS=linux go build ./integration/testimage
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var commands = map[string]bool{"hello": true, "sleep": true, "id": true, "cat": true, "ls": true, "write": true, "exit": true, "env": true}

func main() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) }

func usage(stderr io.Writer) int {
	fmt.Fprintln(stderr, "usage: tool hello|sleep SECONDS|id|cat FILE|ls DIR|write FILE TEXT|exit N|env KEY")
	return 2
}

func run(argv []string, stdout, stderr io.Writer) int {
	if len(argv) == 0 {
		return usage(stderr)
	}
	cmd, args := strings.TrimSuffix(filepath.Base(argv[0]), ".exe"), argv[1:]
	if !commands[cmd] { // invoked as tool (or any other name): the subcommand is argv[1]
		if len(args) == 0 {
			return usage(stderr)
		}
		cmd, args = args[0], args[1:]
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "tool %s: %v\n", cmd, err)
		return 1
	}
	need := func(n int) bool { return len(args) == n }
	switch cmd {
	case "hello":
		fmt.Fprintln(stdout, "hello from isoguard")
	case "id":
		fmt.Fprintf(stdout, "uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	case "sleep":
		if !need(1) {
			return usage(stderr)
		}
		secs, err := strconv.ParseFloat(args[0], 64)
		if err != nil {
			return fail(err)
		}
		// As PID 1 of a container the default signal actions do not apply: handle them.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
		case s := <-sig:
			if s == syscall.SIGTERM {
				return 143
			}
			return 130
		}
	case "cat":
		if !need(1) {
			return usage(stderr)
		}
		f, err := os.Open(args[0])
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		if _, err := io.Copy(stdout, f); err != nil {
			return fail(err)
		}
	case "ls":
		if !need(1) {
			return usage(stderr)
		}
		entries, err := os.ReadDir(args[0])
		if err != nil {
			return fail(err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() {
				name += "/"
			}
			fmt.Fprintln(stdout, name)
		}
	case "write":
		if !need(2) {
			return usage(stderr)
		}
		if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
			return fail(err)
		}
	case "exit":
		if !need(1) {
			return usage(stderr)
		}
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return fail(err)
		}
		return n
	case "env":
		if !need(1) {
			return usage(stderr)
		}
		v, ok := os.LookupEnv(args[0])
		if !ok {
			return 1
		}
		fmt.Fprintln(stdout, v)
	default:
		return usage(stderr)
	}
	return 0
}
