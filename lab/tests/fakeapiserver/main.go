// A stand-in kube-apiserver for the supervisor's own tests: it behaves like the real one at
// start-up where the supervisor matters (every --*-file flag must name a readable file inside
// the "container", --audit-log-path is created) and then idles until SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	fmt.Printf("fake-apiserver pid=%d argv=%s\n", os.Getpid(), strings.Join(os.Args, " "))
	for _, a := range os.Args[1:] {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok {
			continue
		}
		if strings.HasSuffix(name, "-file") {
			if _, err := os.ReadFile(value); err != nil {
				fmt.Printf("fake-apiserver: E %s: %v\n", name, err)
				os.Exit(1)
			}
		}
		if name == "audit-log-path" && value != "-" {
			if err := os.MkdirAll(filepath.Dir(value), 0o700); err != nil {
				fmt.Printf("fake-apiserver: E audit-log-path: %v\n", err)
				os.Exit(1)
			}
			f, err := os.OpenFile(value, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				fmt.Printf("fake-apiserver: E audit-log-path: %v\n", err)
				os.Exit(1)
			}
			fmt.Fprintf(f, "{\"fake\":%d}\n", os.Getpid())
			f.Close()
		}
	}
	if os.Getenv("FAKE_EXIT") != "" {
		fmt.Println("fake-apiserver: exiting as asked")
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("fake-apiserver: serving")
	for {
		select {
		case s := <-sig:
			if os.Getenv("FAKE_IGNORE_TERM") != "" {
				fmt.Printf("fake-apiserver: ignoring %v\n", s)
				continue
			}
			fmt.Printf("fake-apiserver: %v, shutting down\n", s)
			os.Exit(0)
		case <-time.After(time.Hour):
		}
	}
}
