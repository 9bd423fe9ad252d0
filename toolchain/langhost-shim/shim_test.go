package main

import (
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

func info(t *testing.T, root, dir string, opts map[string]any) *pulumirpc.ProgramInfo {
	t.Helper()
	s, err := structpb.NewStruct(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &pulumirpc.ProgramInfo{RootDirectory: root, ProgramDirectory: dir, EntryPoint: ".", Options: s}
}

func TestParseArgs(t *testing.T) {
	c, err := parseArgs([]string{"--logtostderr", "-v=9", "--tracing", "http://t", "-root=/p", "-virtualenv", "venv", "127.0.0.1:4000"})
	if err != nil {
		t.Fatal(err)
	}
	want := cmdline{pass: []string{"--logtostderr", "-v=9", "-tracing=http://t"}, root: "/p", virtualenv: "venv",
		engine: "127.0.0.1:4000"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if _, err := parseArgs([]string{"--tracing"}); err == nil {
		t.Fatal("a flag without its value must be refused")
	}
}

func TestKeyFor(t *testing.T) {
	fb := fallback{Root: "/cwd", Dir: "/cwd", Virtualenv: "old-venv"}
	cases := []struct {
		name   string
		info   *pulumirpc.ProgramInfo
		plugin bool
		want   backendKey
		err    string
	}{
		{"program with a virtualenv", info(t, "/p", "/p", map[string]any{"toolchain": "pip", "virtualenv": ".venv"}),
			false, backendKey{Root: "/p", Dir: "/p", Virtualenv: ".venv"}, ""},
		{"program without options uses the ambient python", info(t, "/p", "/p/src", nil),
			false, backendKey{Root: "/p", Dir: "/p/src"}, ""},
		{"policy pack with its own virtualenv", info(t, "/p/policies/g", "/p/policies/g", map[string]any{"virtualenv": "../../.venv"}),
			true, backendKey{Root: "/p/policies/g", Dir: "/p/policies/g", Virtualenv: "../../.venv"}, ""},
		{"a plugin without one gets venv, never the ambient python", info(t, "/q", "/q", nil),
			true, backendKey{Root: "/q", Dir: "/q", Virtualenv: "venv"}, ""},
		{"no ProgramInfo: an older CLI's command-line flags", nil, false, backendKey(fb), ""},
		{"uv is refused", info(t, "/p", "/p", map[string]any{"toolchain": "uv"}), false, backendKey{}, `toolchain "uv"`},
		{"a type checker is refused", info(t, "/p", "/p", map[string]any{"typechecker": "mypy"}), false, backendKey{},
			`typechecker "mypy"`},
		{"a non-string virtualenv is refused", info(t, "/p", "/p", map[string]any{"virtualenv": 3}), false, backendKey{},
			"must be a string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := keyFor(tc.info, fb, tc.plugin)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// fakeLegacy plays a v3.68 host: it reads only the old fields and records what it got.
type fakeLegacy struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	key backendKey

	mu      sync.Mutex
	plugins []*pulumirpc.RunPluginRequest
	runs    []*pulumirpc.RunRequest
}

func (f *fakeLegacy) Run(_ context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = append(f.runs, req)
	return &pulumirpc.RunResponse{}, nil
}

func (f *fakeLegacy) RunPlugin(req *pulumirpc.RunPluginRequest, srv grpc.ServerStreamingServer[pulumirpc.RunPluginResponse]) error {
	f.mu.Lock()
	f.plugins = append(f.plugins, req)
	f.mu.Unlock()
	if req.Program == "" { //nolint:staticcheck
		// What the real v3.68 host then does: `python "" <engine>`, which exits 2.
		return srv.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: 2}})
	}
	if err := srv.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: []byte("4242\n")}}); err != nil {
		return err
	}
	return status.Error(codes.Aborted, "plugin stopped")
}

func serve(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestForwarding drives the shim as the v3.274 CLI does (ProgramInfo set, deprecated fields empty)
// and checks what the old hosts behind it receive.
func TestForwarding(t *testing.T) {
	var mu sync.Mutex
	fakes := map[backendKey]*fakeLegacy{}
	start := func(key backendKey) (*backend, error) {
		f := &fakeLegacy{key: key}
		conn := serve(t, func(s *grpc.Server) { pulumirpc.RegisterLanguageRuntimeServer(s, f) })
		mu.Lock()
		fakes[key] = f
		mu.Unlock()
		return &backend{client: pulumirpc.NewLanguageRuntimeClient(conn), close: func() {}}, nil
	}
	s := &shim{pool: newPool(start), fb: fallback{Root: "/cwd", Dir: "/cwd"}, version: "3.68.0"}
	cli := pulumirpc.NewLanguageRuntimeClient(serve(t, func(g *grpc.Server) { pulumirpc.RegisterLanguageRuntimeServer(g, s) }))
	ctx := context.Background()

	program := info(t, "/repo", "/repo", map[string]any{"toolchain": "pip", "virtualenv": ".venv"})
	for range 2 {
		if _, err := cli.Run(ctx, &pulumirpc.RunRequest{Pwd: "/repo", Info: program}); err != nil {
			t.Fatal(err)
		}
	}
	pack := info(t, "/repo/policies/guardrails", "/repo/policies/guardrails", map[string]any{"virtualenv": "../../.venv"})
	stream, err := cli.RunPlugin(ctx, &pulumirpc.RunPluginRequest{Pwd: "/repo", Args: []string{"127.0.0.1:9"}, Info: pack,
		Kind: "analyzer"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			t.Fatal("the host's error status was swallowed")
		}
		if err != nil {
			if status.Code(err) != codes.Aborted {
				t.Fatalf("status %v, want the host's Aborted", err)
			}
			break
		}
		got = append(got, string(msg.GetStdout()))
	}
	if !reflect.DeepEqual(got, []string{"4242\n"}) {
		t.Fatalf("relayed %q", got)
	}

	if len(fakes) != 2 {
		t.Fatalf("want one host for the program and one for the pack, got %v", fakes)
	}
	prog := fakes[backendKey{Root: "/repo", Dir: "/repo", Virtualenv: ".venv"}]
	if prog == nil || len(prog.runs) != 2 || prog.runs[0].Program != "." { //nolint:staticcheck
		t.Fatalf("program host: %+v", prog)
	}
	packHost := fakes[backendKey{Root: "/repo/policies/guardrails", Dir: "/repo/policies/guardrails", Virtualenv: "../../.venv"}]
	if packHost == nil || len(packHost.plugins) != 1 {
		t.Fatalf("pack host: %+v", packHost)
	}
	req := packHost.plugins[0]
	if req.Program != "/repo/policies/guardrails" || req.Pwd != "/repo" || !reflect.DeepEqual(req.Args, []string{"127.0.0.1:9"}) { //nolint:staticcheck
		t.Fatalf("the old host would run %q in %q with %v", req.Program, req.Pwd, req.Args) //nolint:staticcheck
	}
	if !slices.Contains(req.Env, "PYTHONUNBUFFERED=1") {
		t.Fatalf("the pack would run buffered: env %v", req.Env)
	}

	// A refused option is the CLI's error, with no host started.
	_, err = cli.Run(ctx, &pulumirpc.RunRequest{Info: info(t, "/x", "/x", map[string]any{"toolchain": "poetry"})})
	if err == nil || !strings.Contains(err.Error(), `toolchain "poetry"`) || len(fakes) != 2 {
		t.Fatalf("err %v, hosts %d", err, len(fakes))
	}
	// What the v3.68 host lacks stays Unimplemented, so the CLI falls back to GetRequiredPlugins.
	_, err = cli.GetRequiredPackages(ctx, &pulumirpc.GetRequiredPackagesRequest{Info: program})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("GetRequiredPackages: %v", err)
	}
}
