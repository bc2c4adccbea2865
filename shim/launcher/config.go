package launcher

import (
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/shim/task"
)

// sandboxConfig is the configuration of one sandbox: the file named by
// the runtime option ConfigPath when there is one, else base (the shim's
// own: $VEIL_CONFIG, else /etc/veil/config.toml), then the sandbox's
// io.veil.config.* annotations. A bad annotation is an invalid argument
// (ctr and CRI see InvalidArgument with its message).
func sandboxConfig(base *config.Config, opts task.SandboxOptions) (*config.Config, error) {
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
		return nil, errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	return cfg, nil
}

// ForConfig returns a launcher that uses the config file at path (a
// container's runtime option ConfigPath, recorded in its bundle), so that
// stopping or cleaning up a sandbox looks for it under that file's
// state_dir; an empty path keeps l.
func (l *Launcher) ForConfig(path string) (task.Launcher, error) {
	if path == "" {
		return l, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("runtime option ConfigPath: %w", err)
	}
	return &Launcher{cfg: cfg}, nil
}
