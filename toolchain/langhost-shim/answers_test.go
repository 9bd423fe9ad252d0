package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// countingLegacy plays a v3.68 host that answers About and GetRequiredPlugins, counting calls.
type countingLegacy struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu      sync.Mutex
	abouts  int
	plugins int
	answer  string
}

func (f *countingLegacy) About(context.Context, *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.abouts++
	return &pulumirpc.AboutResponse{Executable: "/usr/bin/python3", Version: "3.9.0"}, nil
}

func (f *countingLegacy) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plugins++
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: []*pulumirpc.PluginDependency{
		{Name: "kubernetes", Kind: "resource", Version: f.answer}}}, nil
}

// makeVenv writes the parts of a virtualenv the shim reads: bin/python, pyvenv.cfg, site-packages.
func makeVenv(t *testing.T, root string, cfg string, packages ...string) string {
	t.Helper()
	venv := filepath.Join(root, ".venv")
	site := filepath.Join(venv, "lib", "python3.11", "site-packages")
	for _, dir := range []string{filepath.Join(venv, "bin"), site} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(venv, "bin", "python"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range packages {
		if err := os.Mkdir(filepath.Join(site, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return venv
}

func shimOver(t *testing.T, legacy *countingLegacy, cache *answerCache) pulumirpc.LanguageRuntimeClient {
	t.Helper()
	starts := 0
	start := func(backendKey) (*backend, error) {
		starts++
		conn := serve(t, func(s *grpc.Server) { pulumirpc.RegisterLanguageRuntimeServer(s, legacy) })
		return &backend{client: pulumirpc.NewLanguageRuntimeClient(conn), close: func() {}}, nil
	}
	s := &shim{pool: newPool(start), fb: fallback{Root: "/cwd", Dir: "/cwd"}, version: "3.68.0", answer: true,
		answers: cache}
	return pulumirpc.NewLanguageRuntimeClient(serve(t, func(g *grpc.Server) { pulumirpc.RegisterLanguageRuntimeServer(g, s) }))
}

func TestAboutIsTheVirtualenvsPython(t *testing.T) {
	root := t.TempDir()
	venv := makeVenv(t, root, "home = /root/.pyenv/versions/3.11.7/bin\nversion = 3.11.7\n")
	legacy := &countingLegacy{}
	cli := shimOver(t, legacy, nil)
	ctx := context.Background()

	got, err := cli.About(ctx, &pulumirpc.AboutRequest{Info: info(t, root, root, map[string]any{"virtualenv": ".venv"})})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetExecutable() != filepath.Join(venv, "bin", "python") || got.GetVersion() != "3.11.7" || legacy.abouts != 0 {
		t.Fatalf("got %v (v3.68 host asked %d times)", got, legacy.abouts)
	}
	// virtualenv (the tool) writes version_info with a release level: only the version is reported.
	makeVenv(t, filepath.Join(root, "b"), "version_info = 3.12.1.final.0\n")
	got, err = cli.About(ctx, &pulumirpc.AboutRequest{Info: info(t, filepath.Join(root, "b"), filepath.Join(root, "b"),
		map[string]any{"virtualenv": ".venv"})})
	if err != nil || got.GetVersion() != "3.12.1" {
		t.Fatalf("got %v, %v", got, err)
	}
	// No virtualenv: the v3.68 host answers, as before.
	got, err = cli.About(ctx, &pulumirpc.AboutRequest{Info: info(t, root, root, nil)})
	if err != nil || got.GetVersion() != "3.9.0" || legacy.abouts != 1 {
		t.Fatalf("got %v, %v (asked %d times)", got, err, legacy.abouts)
	}
}

func TestRequiredPluginsAreAskedOnceUntilAPackageChanges(t *testing.T) {
	root := t.TempDir()
	venv := makeVenv(t, root, "version = 3.11.7\n", "pulumi-3.100.0.dist-info", "pulumi_kubernetes-4.1.0.dist-info")
	legacy := &countingLegacy{answer: "4.1.0"}
	cache := &answerCache{dir: filepath.Join(t.TempDir(), "answers"), stamp: "test"}
	ctx := context.Background()
	ask := func(cli pulumirpc.LanguageRuntimeClient) string {
		t.Helper()
		resp, err := cli.GetRequiredPlugins(ctx, &pulumirpc.GetRequiredPluginsRequest{
			Info: info(t, root, root, map[string]any{"toolchain": "pip", "virtualenv": ".venv"})})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetPlugins()[0].GetVersion()
	}

	// Each `pulumi` run starts a new shim: the answer outlives it.
	for range 3 {
		if v := ask(shimOver(t, legacy, cache)); v != "4.1.0" {
			t.Fatalf("answered %q", v)
		}
	}
	if legacy.plugins != 1 {
		t.Fatalf("the v3.68 host was asked %d times for one installed set", legacy.plugins)
	}

	// An upgrade: pip replaces the dist-info directory. The next run asks again.
	site := filepath.Join(venv, "lib", "python3.11", "site-packages")
	if err := os.Remove(filepath.Join(site, "pulumi_kubernetes-4.1.0.dist-info")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(site, "pulumi_kubernetes-4.2.0.dist-info"), 0o755); err != nil {
		t.Fatal(err)
	}
	legacy.answer = "4.2.0"
	if v := ask(shimOver(t, legacy, cache)); v != "4.2.0" || legacy.plugins != 2 {
		t.Fatalf("after an upgrade: answered %q, asked %d times", v, legacy.plugins)
	}

	// A reinstall of the same names still moves the directory's mtime.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(site, later, later); err != nil {
		t.Fatal(err)
	}
	ask(shimOver(t, legacy, cache))
	if legacy.plugins != 3 {
		t.Fatalf("after a reinstall: asked %d times", legacy.plugins)
	}

	// A half-written or foreign file in the cache is not an answer.
	entries, _ := os.ReadDir(cache.dir)
	for _, e := range entries {
		if err := os.WriteFile(filepath.Join(cache.dir, e.Name()), []byte{0xff, 0xff, 0xff}, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if v := ask(shimOver(t, legacy, cache)); v != "4.2.0" || legacy.plugins != 4 {
		t.Fatalf("a corrupt answer was used: %q, asked %d times", v, legacy.plugins)
	}
}

func TestAMissingVirtualenvIsTheV368HostsToCreate(t *testing.T) {
	root := t.TempDir()
	legacy := &countingLegacy{answer: "1"}
	cache := &answerCache{dir: filepath.Join(t.TempDir(), "answers"), stamp: "test"}
	for range 2 {
		_, err := shimOver(t, legacy, cache).GetRequiredPlugins(context.Background(), &pulumirpc.GetRequiredPluginsRequest{
			Info: info(t, root, root, map[string]any{"virtualenv": ".venv"})})
		if err != nil {
			t.Fatal(err)
		}
	}
	if legacy.plugins != 2 {
		t.Fatalf("with no virtualenv yet each run must reach the v3.68 host (it creates one): %d", legacy.plugins)
	}
	if entries, _ := os.ReadDir(cache.dir); len(entries) != 0 {
		t.Fatalf("nothing may be kept without a virtualenv to key it on: %v", entries)
	}
}
