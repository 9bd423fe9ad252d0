package main

// Two calls the shim answers without the v3.68 host, because that host answers them slowly on
// every `pulumi preview` and `up`, one after the other before the program starts:
//
//   - About: the v3.68 host runs `python --version` through $PATH (pyenv's shell shims here, ~0.3 s)
//     and reports that python, not the virtualenv's. The shim reads the virtualenv's pyvenv.cfg.
//   - GetRequiredPlugins: the v3.68 host runs `pip list` in the virtualenv (~1 CPU-second). Its
//     answer depends only on the request and on what is installed, so the shim keeps it on disk,
//     keyed by the request and by a fingerprint of the virtualenv's site-packages (a pip install or
//     uninstall changes the names and the directory's mtime). Anything unexpected (no virtualenv
//     yet, an unreadable cache) goes to the v3.68 host as before, which also creates a missing
//     virtualenv.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/proto"
)

// answersEnv set to "off" makes the shim forward About and GetRequiredPlugins like every other
// call: an escape hatch, and what benchmarks/bench_langhost.py compares against.
const answersEnv = "KUBE_AUDIT_LANGHOST_ANSWERS"

// cacheRootEnv is the project's cache root (scripts/toolchain.sh's too); answers go in
// langhost-shim/ under it, by default under the user's cache directory.
const cacheRootEnv = "KUBE_AUDIT_CACHE"

// virtualenvDir is the absolute virtualenv a key's host would use, or "" when it has none.
func virtualenvDir(key backendKey) string {
	if key.Virtualenv == "" {
		return ""
	}
	if filepath.IsAbs(key.Virtualenv) {
		return filepath.Clean(key.Virtualenv)
	}
	return filepath.Join(key.Root, key.Virtualenv)
}

// venvAbout answers About from the virtualenv's pyvenv.cfg: its python and that python's version.
// ok is false when there is no virtualenv or the file does not say (then the v3.68 host answers).
func venvAbout(venv string) (resp *pulumirpc.AboutResponse, ok bool) {
	if venv == "" {
		return nil, false
	}
	exe := filepath.Join(venv, "bin", "python")
	if _, err := os.Stat(exe); err != nil {
		return nil, false
	}
	f, err := os.Open(filepath.Join(venv, "pyvenv.cfg"))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		name, value, found := strings.Cut(scanner.Text(), "=")
		name = strings.TrimSpace(name)
		// venv writes "version", virtualenv writes "version_info" (e.g. 3.11.7.final.0).
		if found && (name == "version" || name == "version_info") {
			version := strings.TrimSpace(value)
			if parts := strings.Split(version, "."); len(parts) > 3 {
				version = strings.Join(parts[:3], ".")
			}
			if version != "" {
				return &pulumirpc.AboutResponse{Executable: exe, Version: version}, true
			}
		}
	}
	return nil, false
}

// sitePackagesPrint is what installed packages the virtualenv holds: every site-packages
// directory with its mtime and entry names (dist-info names carry versions). ok is false when
// there is none to read, e.g. a virtualenv not created yet.
func sitePackagesPrint(venv string) (string, bool) {
	if venv == "" {
		return "", false
	}
	dirs, err := filepath.Glob(filepath.Join(venv, "lib", "python*", "site-packages"))
	if err != nil || len(dirs) == 0 {
		return "", false
	}
	sort.Strings(dirs)
	var b strings.Builder
	for _, dir := range dirs {
		st, err := os.Stat(dir)
		if err != nil {
			return "", false
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return "", false
		}
		fmt.Fprintf(&b, "%s %d\n", dir, st.ModTime().UnixNano())
		for _, e := range entries {
			b.WriteString(e.Name())
			b.WriteByte('\n')
		}
	}
	return b.String(), true
}

// answerCache keeps GetRequiredPlugins answers on disk. A nil *answerCache keeps nothing.
type answerCache struct {
	dir string
	// stamp invalidates every answer when the host behind the shim changes (a toolchain rebuild).
	stamp string
}

func newAnswerCache(legacyBin, version string) *answerCache {
	root := os.Getenv(cacheRootEnv)
	if root == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil
		}
		root = filepath.Join(base, "kube-audit")
	}
	dir := filepath.Join(root, "langhost-shim")
	stamp := version
	if st, err := os.Stat(legacyBin); err == nil {
		stamp = fmt.Sprintf("%s %s %d %d", version, legacyBin, st.Size(), st.ModTime().UnixNano())
	}
	return &answerCache{dir: dir, stamp: stamp}
}

// pathFor is the file an answer lives in, or "" when this request must not be cached.
func (c *answerCache) pathFor(key backendKey, req *pulumirpc.GetRequiredPluginsRequest) string {
	if c == nil {
		return ""
	}
	installed, ok := sitePackagesPrint(virtualenvDir(key))
	if !ok {
		return ""
	}
	wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%+v\x00%s\x00", c.stamp, key, installed)
	h.Write(wire)
	return filepath.Join(c.dir, hex.EncodeToString(h.Sum(nil))+".pb")
}

func (c *answerCache) load(path string) (*pulumirpc.GetRequiredPluginsResponse, bool) {
	if path == "" {
		return nil, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	if err := proto.Unmarshal(data, resp); err != nil {
		return nil, false
	}
	return resp, true
}

// store writes whole or not at all (temp file, then rename): a reader never sees half an answer.
// A failure only means the next run asks the v3.68 host again.
func (c *answerCache) store(path string, resp *pulumirpc.GetRequiredPluginsResponse) {
	if path == "" {
		return
	}
	data, err := proto.Marshal(resp)
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".answer-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), path) != nil {
		_ = os.Remove(tmp.Name())
	}
}
