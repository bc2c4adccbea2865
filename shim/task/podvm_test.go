package task

import "testing"

// configLauncher is a launcher with the ForConfig ability; it records the
// paths it was asked for.
type configLauncher struct {
	fakeLauncher
	paths []string
}

func (l *configLauncher) ForConfig(path string) (Launcher, error) {
	l.paths = append(l.paths, path)
	return &fakeLauncher{}, nil
}

// TestLauncherFor: a ConfigPath switches a launcher that can (the VM
// launcher's cases are in shim/launcher); other launchers are kept.
func TestLauncherFor(t *testing.T) {
	cl := &configLauncher{}
	cases := []struct {
		name     string
		l        Launcher
		path     string
		wantSame bool
	}{
		{name: "no ConfigPath keeps the launcher", l: cl, wantSame: true},
		{name: "ConfigPath asks the launcher", l: cl, path: "/etc/veil/gold.toml"},
		{name: "other launchers are kept", l: &fakeLauncher{}, path: "/etc/veil/gold.toml", wantSame: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := launcherFor(tc.l, tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if (l == tc.l) != tc.wantSame {
				t.Fatalf("launcherFor(%T, %q) = %T, same %v, want %v", tc.l, tc.path, l, l == tc.l, tc.wantSame)
			}
		})
	}
	if len(cl.paths) != 1 || cl.paths[0] != "/etc/veil/gold.toml" {
		t.Fatalf("ForConfig asked for %q", cl.paths)
	}
}
