package main

// The LanguageRuntime service the CLI talks to: every call the v3.68 host implements is
// forwarded to the host its ProgramInfo needs, with the old fields filled in, except About and a
// GetRequiredPlugins answered before (answers.go). Calls it does not
// implement (GetRequiredPackages, Template, Generate*, Pack, Link, ...) answer Unimplemented, as
// the v3.68 host itself would; the CLI falls back where it can (GetRequiredPackages ->
// GetRequiredPlugins).

import (
	"context"
	"errors"
	"io"
	"sync"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

type shim struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	pool *pool
	fb   fallback
	// answer: About is answered here from the virtualenv (answers.go); answers keeps
	// GetRequiredPlugins answers (nil, as when answer is off, keeps none).
	answer  bool
	answers *answerCache
	// version is the v3.68 host's own version, reported as this plugin's.
	version string

	mu     sync.Mutex
	engine string
}

func (s *shim) engineAddress() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.engine
}

func (s *shim) host(info *pulumirpc.ProgramInfo, plugin bool) (pulumirpc.LanguageRuntimeClient, error) {
	key, err := keyFor(info, s.fb, plugin)
	if err != nil {
		return nil, err
	}
	return s.pool.get(key)
}

// Handshake is only sent when the CLI attaches to an already running host; it carries the
// engine address that is otherwise the last command-line argument.
func (s *shim) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.engine == "" {
		s.engine = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (s *shim) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: s.version}, nil
}

func (s *shim) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	key, err := keyFor(req.GetInfo(), s.fb, false)
	if err != nil {
		return nil, err
	}
	fillRequiredPlugins(req)
	path := s.answers.pathFor(key, req)
	if resp, ok := s.answers.load(path); ok {
		return resp, nil
	}
	host, err := s.pool.get(key)
	if err != nil {
		return nil, err
	}
	resp, err := host.GetRequiredPlugins(ctx, req)
	if err == nil {
		s.answers.store(path, resp)
	}
	return resp, err
}

func (s *shim) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	host, err := s.host(req.GetInfo(), false)
	if err != nil {
		return nil, err
	}
	fillRun(req)
	return host.Run(ctx, req)
}

func (s *shim) RunPlugin(req *pulumirpc.RunPluginRequest, stream grpc.ServerStreamingServer[pulumirpc.RunPluginResponse]) error {
	host, err := s.host(req.GetInfo(), true)
	if err != nil {
		return err
	}
	fillRunPlugin(req)
	src, err := host.RunPlugin(stream.Context(), req)
	if err != nil {
		return err
	}
	return relay(src, stream)
}

func (s *shim) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	host, err := s.host(req.GetInfo(), false)
	if err != nil {
		return err
	}
	fillInstallDependencies(req)
	src, err := host.InstallDependencies(stream.Context(), req)
	if err != nil {
		return err
	}
	return relay(src, stream)
}

// About: from the virtualenv when there is one (answers.go). Otherwise the v3.68 host, which
// takes an Empty here; the AboutRequest's only field is unknown to it and ignored, so the message
// goes as is.
func (s *shim) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	key, err := keyFor(req.GetInfo(), s.fb, false)
	if err != nil {
		return nil, err
	}
	if s.answer {
		if resp, ok := venvAbout(virtualenvDir(key)); ok {
			return resp, nil
		}
	}
	host, err := s.pool.get(key)
	if err != nil {
		return nil, err
	}
	return host.About(ctx, req)
}

func (s *shim) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	host, err := s.host(req.GetInfo(), false)
	if err != nil {
		return nil, err
	}
	fillProgramDependencies(req)
	return host.GetProgramDependencies(ctx, req)
}

// relay copies a server stream from the host to the CLI until the host ends it; a gRPC status
// error from the host reaches the CLI unchanged.
func relay[T any](src grpc.ServerStreamingClient[T], dst grpc.ServerStreamingServer[T]) error {
	for {
		msg, err := src.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := dst.Send(msg); err != nil {
			return err
		}
	}
}
