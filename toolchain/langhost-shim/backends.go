package main

// The v3.68 host processes behind the shim: one per backendKey, started on first use and kept
// for the life of the shim (a preview needs two at most: the program's and the policy pack's).

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// backend is one running host and the connection to it.
type backend struct {
	client pulumirpc.LanguageRuntimeClient
	close  func()
}

// starter starts the host for a key; tests replace it with an in-process fake.
type starter func(key backendKey) (*backend, error)

type pool struct {
	mu       sync.Mutex
	start    starter
	backends map[backendKey]*backend
}

func newPool(start starter) *pool {
	return &pool{start: start, backends: map[backendKey]*backend{}}
}

// get returns the host for key, starting it if needed. Starting holds the lock: starts are rare
// and two concurrent first requests must not start two hosts for one key.
func (p *pool) get(key backendKey) (pulumirpc.LanguageRuntimeClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.backends[key]; ok {
		return b.client, nil
	}
	b, err := p.start(key)
	if err != nil {
		return nil, err
	}
	p.backends[key] = b
	return b.client, nil
}

func (p *pool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, b := range p.backends {
		b.close()
		delete(p.backends, key)
	}
}

// legacyHost starts the v3.68 host binary at bin the way a v3.68-era CLI did: the runtime
// options as flags, the program directory as its working directory, the engine address last.
// passFlags are the CLI's logging/tracing flags, handed on unchanged.
func legacyHost(bin string, passFlags []string, engine func() string) starter {
	return func(key backendKey) (*backend, error) {
		args := append([]string{}, passFlags...)
		if key.Root != "" {
			args = append(args, "-root="+key.Root)
		}
		if key.Virtualenv != "" {
			args = append(args, "-virtualenv="+key.Virtualenv)
		}
		if addr := engine(); addr != "" {
			args = append(args, addr)
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = key.Dir
		// The host writes the Python program's own output to its stdout/stderr after the port
		// line; the engine reads ours, so both are passed through.
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting the Python language host %s: %w", bin, err)
		}
		reader := bufio.NewReader(out)
		line, err := reader.ReadString('\n')
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("the Python language host %s (in %s) exited before printing its port: %w",
				bin, key.Dir, err)
		}
		port, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || port <= 0 || port > 65535 {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("the Python language host %s printed %q, not a port", bin, line)
		}
		go func() {
			_, _ = io.Copy(os.Stdout, reader)
			_ = cmd.Wait()
		}()
		conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(port),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize), grpc.MaxCallSendMsgSize(maxMessageSize)))
		if err != nil {
			_ = cmd.Process.Kill()
			return nil, err
		}
		return &backend{
			client: pulumirpc.NewLanguageRuntimeClient(conn),
			close: func() {
				_ = conn.Close()
				_ = cmd.Process.Kill()
			},
		}, nil
	}
}
