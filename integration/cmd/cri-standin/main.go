//go:build linux

// Command cri-standin is the static program of the CRI test images (harness.CRIImagesTar).
// It is a multi-call program chosen by the base name of argv[0]:
//
//	pause   the pod sandbox's process: reaps children, exits 0 on SIGTERM or SIGINT
//	        (what registry.k8s.io/pause does, without a registry)
//	other   a stand-in web server (nginx, httpd): serves WEB_ROOT (default /www) on
//	        WEB_PORT (default 80), writes its pid to PID_FILE (if set), logs one line
//	        "NAME: serving DIR on :PORT" to stdout, reaps children, exits 0 on SIGTERM/SIGINT
//
// Build it static: CGO_ENABLED=0 GOOS=linux go build ./integration/cmd/cri-standin
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
)

func main() {
	name := filepath.Base(os.Args[0])
	if name == "pause" {
		os.Exit(pause())
	}
	os.Exit(serve(name))
}

// signals returns a channel for SIGTERM/SIGINT and starts reaping children on SIGCHLD
// (as PID 1 the orphans of the pod are re-parented to us).
func signals() chan os.Signal {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	chld := make(chan os.Signal, 8)
	signal.Notify(chld, syscall.SIGCHLD)
	go func() {
		for range chld {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}()
	return stop
}

func pause() int {
	stop := signals()
	<-stop
	return 0
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func serve(name string) int {
	stop := signals()
	root := getenv("WEB_ROOT", "/www")
	port, err := strconv.Atoi(getenv("WEB_PORT", "80"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: WEB_PORT: %v\n", name, err)
		return 2
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	if pf := os.Getenv("PID_FILE"); pf != "" {
		if err := os.WriteFile(pf, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			return 1
		}
	}
	fmt.Printf("%s: serving %s on :%d\n", name, root, port)
	go http.Serve(ln, http.FileServer(http.Dir(root)))
	<-stop
	return 0
}
