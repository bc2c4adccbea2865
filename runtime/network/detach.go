package network

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/log"
)

// Detach removes the redirect filters and the taps Attach created, and
// the ingress qdiscs it added where no other filter uses them. It is
// idempotent, and a namespace that no longer exists is not an error (its
// taps went with it).
func (e *Endpoints) Detach(ctx context.Context) error {
	if e == nil || len(e.NICs) == 0 {
		return nil
	}
	taps := map[string]bool{}
	for _, nic := range e.NICs {
		taps[nic.Tap] = true
	}
	if err := detach(ctx, e.NetNSPath, taps); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	log.G(ctx).WithField("netns", e.NetNSPath).Debug("pod network detached")
	return nil
}

// Cleanup removes what a crashed runtime may have left in the namespace
// at netnsPath: every tap named *TapSuffix, the filters redirecting to
// one (or to a link that no longer exists) and ingress qdiscs left
// without filters. A namespace that no longer exists is not an error.
func Cleanup(ctx context.Context, netnsPath string) error {
	if err := detach(ctx, netnsPath, nil); err != nil {
		return fmt.Errorf("network cleanup: %w", err)
	}
	log.G(ctx).WithField("netns", netnsPath).Debug("pod network cleaned up")
	return nil
}

// detach tears down the taps named in only (every tap when nil).
func detach(ctx context.Context, netnsPath string, only map[string]bool) error {
	n, err := openNetNS(netnsPath)
	if errors.Is(err, errNoNetNS) {
		return nil
	}
	if err != nil {
		return err
	}
	defer n.Close()
	return n.teardown(ctx, only)
}

// teardown removes the redirects to the taps named in only (every tap of
// this package when nil; then also redirects to links that are gone),
// then the taps themselves.
func (n *nsHandle) teardown(ctx context.Context, only map[string]bool) error {
	links, err := n.nl.LinkList()
	if err != nil {
		return fmt.Errorf("netns %s: list links: %w", n.path, err)
	}
	taps := map[int]string{}
	exists := map[int]bool{}
	for _, l := range links {
		a := l.Attrs()
		exists[a.Index] = true
		if isTap(l) && (only == nil || only[a.Name]) {
			taps[a.Index] = a.Name
		}
	}
	if len(taps) > 0 || only == nil {
		n.removeForward(ctx)
	}
	var errs []error
	for _, l := range links {
		if _, ok := taps[l.Attrs().Index]; ok {
			continue // its filters go with it
		}
		if err := n.removeRedirects(l, taps, exists, only == nil); err != nil {
			errs = append(errs, fmt.Errorf("netns %s: %s: %w", n.path, l.Attrs().Name, err))
		}
	}
	for _, l := range links {
		name, ok := taps[l.Attrs().Index]
		if !ok {
			continue
		}
		if err := n.nl.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("netns %s: delete tap %s: %w", n.path, name, err))
		}
	}
	return errors.Join(errs...)
}
