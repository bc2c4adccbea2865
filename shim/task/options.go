package task

import (
	"fmt"
	"path/filepath"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/anypb"
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
		return "", errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("runtime options of type %q: Veil takes %s (ConfigPath)",
			opts.GetTypeUrl(), o.ProtoReflect().Descriptor().FullName()))
	}
	if err := opts.UnmarshalTo(&o); err != nil {
		return "", errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("decode runtime options: %v", err))
	}
	p := o.GetConfigPath()
	if p != "" && !filepath.IsAbs(p) {
		return "", errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("runtime option ConfigPath %q: must be an absolute path", p))
	}
	return p, nil
}
