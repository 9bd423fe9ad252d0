// Command pulumi-language-python is kube-audit's Python language host for the current Pulumi CLI.
//
// The only Python host the Go module proxy serves is the one inside sdk/v3@v3.68.0. It predates
// ProgramInfo, the field in which the current CLI sends the program's directories and
// `runtime.options`, so on its own it ignores `virtualenv` and starts policy packs as
// `python "" <engine>`. This shim speaks the CLI's protocol (pulumirpc at the CLI's sdk/v3) and
// forwards every call to a v3.68 host (`pulumi-language-python-legacy` beside this binary),
// started per (root, program directory, virtualenv) with the flags and deprecated request fields
// that host reads, filled from ProgramInfo. Nothing of the v3.68 host is copied here.
//
// Usage (by the engine): pulumi-language-python [logging/tracing flags] <engine address>
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// legacyName is the v3.68 host's file name, beside this binary (scripts/toolchain.sh puts it there).
const legacyName = "pulumi-language-python-legacy"

// maxMessageSize matches the engine's own limit (rpcutil), so large programs pass through.
const maxMessageSize = 400 * 1024 * 1024

// version is set at build time to the v3.68 host's version (it is the one running Python).
var version = "0.0.0-dev"

// cmdline is what the engine (or an older CLI) passed on the command line.
type cmdline struct {
	pass       []string // flags handed on to every v3.68 host unchanged (logging, tracing)
	root       string   // -root / -virtualenv: what older CLIs passed instead of ProgramInfo
	virtualenv string
	engine     string
}

// parseArgs splits the command line without a flag set: the logging flags are the v3.68 host's
// (glog's), and an unknown flag must be handed on, not refused.
func parseArgs(args []string) (cmdline, error) {
	var c cmdline
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			c.engine = a
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "root", "virtualenv", "tracing":
			if !hasValue {
				if i+1 >= len(args) {
					return c, fmt.Errorf("flag %s needs a value", a)
				}
				i++
				value = args[i]
			}
			switch name {
			case "root":
				c.root = value
			case "virtualenv":
				c.virtualenv = value
			default:
				c.pass = append(c.pass, "-tracing="+value)
			}
		default:
			c.pass = append(c.pass, a)
		}
	}
	return c, nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python (kube-audit shim): %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	c, err := parseArgs(os.Args[1:])
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	legacy := filepath.Join(filepath.Dir(self), legacyName)
	if _, err := os.Stat(legacy); err != nil {
		return fmt.Errorf("the v3.68 Python language host is missing (scripts/toolchain.sh builds it): %w", err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	root := c.root
	if root == "" {
		root = cwd
	}

	s := &shim{fb: fallback{Root: root, Dir: cwd, Virtualenv: c.virtualenv}, version: version, engine: c.engine,
		answer: os.Getenv(answersEnv) != "off"}
	if s.answer {
		s.answers = newAnswerCache(legacy, version)
	}
	s.pool = newPool(legacyHost(legacy, c.pass, s.engineAddress))
	defer s.pool.closeAll()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(maxMessageSize), grpc.MaxSendMsgSize(maxMessageSize))
	pulumirpc.RegisterLanguageRuntimeServer(srv, s)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.engine != "" {
		go watchEngine(ctx, c.engine, stop)
	}
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()

	// The engine reads the port from our first line of stdout.
	fmt.Printf("%d\n", lis.Addr().(*net.TCPAddr).Port)
	return srv.Serve(lis)
}

// watchEngine stops the shim (and with it its hosts) once the engine stops answering, as the
// real host does: a CLI killed without closing its plugins must not leave hosts behind.
func watchEngine(ctx context.Context, addr string, stop context.CancelFunc) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	failedSince := time.Time{}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := health.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil || status.Code(err) == codes.Unimplemented {
			failedSince = time.Time{}
			continue
		}
		if failedSince.IsZero() {
			failedSince = time.Now()
		} else if time.Since(failedSince) > time.Minute {
			stop()
			return
		}
	}
}
