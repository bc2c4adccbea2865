package guest

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Console is the device the agent logs to.
const Console = "/dev/console"

// SetupLogging sends log lines, timestamped, to w with the given level
// ("debug", "info", ...); the process name tags every line.
func SetupLogging(w io.Writer, level, name string) error {
	if err := log.SetLevel(level); err != nil {
		return fmt.Errorf("log level %q: %w", level, err)
	}
	logrus.SetOutput(w)
	logrus.SetFormatter(&logrus.TextFormatter{
		FullTimestamp:   true,
		TimestampFormat: time.RFC3339Nano,
		DisableColors:   true,
	})
	log.L = log.L.WithField("agent", name)
	return nil
}

// redirectToConsole makes the console this process's stdin, stdout and
// stderr; the server it starts inherits them.
func redirectToConsole() error {
	f, err := os.OpenFile(Console, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", Console, err)
	}
	defer func() { _ = f.Close() }()
	for _, fd := range []int{0, 1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup %s to fd %d: %w", Console, fd, err)
		}
	}
	return nil
}
