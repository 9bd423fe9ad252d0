package main

// The mapping from what the current CLI sends (a ProgramInfo in every request) to what the v3.68
// host reads (its -root/-virtualenv process flags, its working directory, and the deprecated
// request fields). No processes, no network, so shim_test.go covers it directly.

import (
	"fmt"
	"os"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// backendKey is everything the v3.68 host fixes at start-up; requests that differ in any of it
// need their own host process (the program and a policy pack have different virtualenvs).
type backendKey struct {
	// Root is the host's -root flag: the directory a relative virtualenv is resolved against.
	Root string
	// Dir is the host's working directory: where GetRequiredPlugins looks for the program.
	Dir string
	// Virtualenv is the host's -virtualenv flag, as written in Pulumi.yaml / PulumiPolicy.yaml.
	Virtualenv string
}

// fallback is what the shim itself was started with, used when a request carries no ProgramInfo
// (an older CLI, which passed -root/-virtualenv on the command line instead).
type fallback struct {
	Root       string
	Dir        string
	Virtualenv string
}

// keyFor picks the host a request needs. plugin is true for RunPlugin: like the current host,
// a plugin (policy pack) with no virtualenv gets "venv" in its own directory, never the ambient
// Python.
func keyFor(info *pulumirpc.ProgramInfo, fb fallback, plugin bool) (backendKey, error) {
	if info == nil {
		return backendKey(fb), nil
	}
	key := backendKey{Root: info.GetRootDirectory(), Dir: info.GetProgramDirectory()}
	if key.Root == "" {
		key.Root = fb.Root
	}
	if key.Dir == "" {
		key.Dir = key.Root
	}
	opts := info.GetOptions().AsMap()
	toolchain := ""
	for name, value := range opts {
		text, isText := value.(string)
		switch name {
		case "virtualenv":
			if !isText {
				return backendKey{}, fmt.Errorf("runtime.options.virtualenv must be a string, got %v", value)
			}
			key.Virtualenv = text
		case "toolchain":
			toolchain, _ = value.(string)
			// The v3.68 host only knows pip virtualenvs; running a uv or poetry project with the
			// ambient python instead would silently use the wrong dependencies.
			if toolchain != "" && toolchain != "pip" {
				return backendKey{}, fmt.Errorf("runtime.options.toolchain %q is not supported by this language "+
					"host (kube-audit's shim over the v3.68 host, which knows only pip virtualenvs); use "+
					"toolchain: pip with a virtualenv", toolchain)
			}
		case "typechecker":
			// The current host runs mypy/pyright before the program; the v3.68 host cannot, and a
			// check that silently never runs is worse than an error.
			if isText && text != "" {
				return backendKey{}, fmt.Errorf("runtime.options.typechecker %q is not supported by this "+
					"language host (kube-audit's shim over the v3.68 host); run the type checker yourself", text)
			}
		}
	}
	if plugin && key.Virtualenv == "" {
		key.Virtualenv = "venv"
	}
	return key, nil
}

// The deprecated fields the v3.68 host reads, filled in place from ProgramInfo where the CLI
// left them empty.

func fillRun(req *pulumirpc.RunRequest) {
	info := req.GetInfo()
	if req.Pwd == "" {
		req.Pwd = info.GetProgramDirectory()
	}
	if req.Program == "" { //nolint:staticcheck // the deprecated field is what the v3.68 host reads
		req.Program = info.GetEntryPoint() //nolint:staticcheck
	}
}

func fillRequiredPlugins(req *pulumirpc.GetRequiredPluginsRequest) {
	info := req.GetInfo()
	if req.Pwd == "" { //nolint:staticcheck
		req.Pwd = info.GetProgramDirectory() //nolint:staticcheck
	}
	if req.Program == "" { //nolint:staticcheck
		req.Program = info.GetEntryPoint() //nolint:staticcheck
	}
}

// fillRunPlugin makes the v3.68 host run `python <program dir> <args>`, the plugin directory's
// __main__.py, as the current host does; it read the now-empty `program` field instead and ran
// `python "" <engine>`, which is why policy packs never started. Unbuffered, as the old
// `python -u -m pulumi.policy` route was: a PolicyPack writes its port to stdout without
// flushing, and a pipe would hold it back.
func fillRunPlugin(req *pulumirpc.RunPluginRequest) {
	info := req.GetInfo()
	if req.Program == "" && info.GetProgramDirectory() != "" { //nolint:staticcheck
		req.Program = info.GetProgramDirectory() //nolint:staticcheck
	}
	if req.Pwd == "" {
		req.Pwd = info.GetProgramDirectory()
	}
	if len(req.Env) == 0 {
		// The v3.68 host replaces the plugin's environment with this list: never leave it just ours.
		req.Env = os.Environ()
	}
	req.Env = append(req.Env, "PYTHONUNBUFFERED=1")
}

func fillInstallDependencies(req *pulumirpc.InstallDependenciesRequest) {
	if req.Directory == "" { //nolint:staticcheck
		req.Directory = req.GetInfo().GetProgramDirectory() //nolint:staticcheck
	}
}

func fillProgramDependencies(req *pulumirpc.GetProgramDependenciesRequest) {
	info := req.GetInfo()
	if req.Pwd == "" { //nolint:staticcheck
		req.Pwd = info.GetProgramDirectory() //nolint:staticcheck
	}
	if req.Program == "" { //nolint:staticcheck
		req.Program = info.GetEntryPoint() //nolint:staticcheck
	}
}
