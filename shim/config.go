package shim

import (
	"fmt"
	"path/filepath"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/veil-runtime/veil/runtime/config"
)

// configPathOption returns the ConfigPath of the runtime options
// containerd passes in CreateTaskRequest.Options, or "" when there are
// none. For a runtime type other than runc's, containerd sends
// runtimeoptions.v1.Options: CRI builds it from the runtime's `options`
// table (ConfigPath = "..."; without ConfigPath it puts the table's TOML
// in ConfigBody, which Veil does not read), ctr from
// --runtime-config-path.
func configPathOption(opts *anypb.Any) (string, error) {
	if opts == nil || (opts.GetTypeUrl() == "" && len(opts.GetValue()) == 0) {
		return "", nil
	}
	var o runtimeoptions.Options
	if !opts.MessageIs(&o) {
		return "", invalidArgument{fmt.Errorf("runtime options of type %q: Veil takes %s (ConfigPath)",
			opts.GetTypeUrl(), o.ProtoReflect().Descriptor().FullName())}
	}
	if err := opts.UnmarshalTo(&o); err != nil {
		return "", invalidArgument{fmt.Errorf("decode runtime options: %w", err)}
	}
	p := o.GetConfigPath()
	if p != "" && !filepath.IsAbs(p) {
		return "", invalidArgument{fmt.Errorf("runtime option ConfigPath %q: must be an absolute path", p)}
	}
	return p, nil
}

// sandboxConfig is the configuration of one sandbox: the file named by
// the runtime option ConfigPath when there is one, else base (the shim's
// own: $VEIL_CONFIG, else /etc/veil/config.toml), then the sandbox's
// io.veil.config.* annotations.
func sandboxConfig(base *config.Config, opts SandboxOptions) (*config.Config, error) {
	cfg := base
	if opts.ConfigPath != "" {
		c, err := config.Load(opts.ConfigPath)
		if err != nil {
			return nil, fmt.Errorf("runtime option ConfigPath: %w", err)
		}
		cfg = c
	}
	cfg, err := config.ApplyAnnotations(cfg, opts.Annotations)
	if err != nil {
		return nil, invalidArgument{err}
	}
	return cfg, nil
}

// invalidArgument classes err as errdefs' invalid argument (ctr and CRI
// see InvalidArgument) and keeps its message and a single chain: an error
// wrapping two (%w twice, errors.Join) crosses ttrpc as one line per
// wrapped error.
type invalidArgument struct{ error }

func (e invalidArgument) Unwrap() error { return e.error }

// InvalidParameter is errdefs' marker of an invalid argument.
func (invalidArgument) InvalidParameter() {}

// launcherFor returns a launcher that uses the config file at path (a
// container's runtime option ConfigPath, recorded in its bundle), so the
// `delete` action looks for a dead sandbox under that file's state_dir.
// Launchers other than the VM one are returned as they are.
func launcherFor(l Launcher, path string) (Launcher, error) {
	if _, ok := l.(*vmLauncher); !ok || path == "" {
		return l, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("runtime option ConfigPath: %w", err)
	}
	return &vmLauncher{cfg: cfg}, nil
}
