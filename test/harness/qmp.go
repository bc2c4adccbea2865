package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"

	"github.com/veil-runtime/veil/runtime/statedir"
)

// QMP runs a QMP command without arguments on the QEMU VM of the sandbox
// directory dir: "stop" freezes it (the guest, its agent and its
// containers stop answering, the VMM stays up), "cont" thaws it.
func QMP(ctx context.Context, dir, command string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(dir, statedir.QMPSocket))
	if err != nil {
		return fmt.Errorf("dial QMP: %w", err)
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	r := bufio.NewReader(conn)
	if _, err := r.ReadBytes('\n'); err != nil { // the greeting
		return fmt.Errorf("QMP greeting: %w", err)
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		if _, err := fmt.Fprintf(conn, `{"execute":%q}`+"\n", cmd); err != nil {
			return fmt.Errorf("QMP %s: %w", cmd, err)
		}
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return fmt.Errorf("QMP %s: %w", cmd, err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(line, &m); err != nil {
				return fmt.Errorf("QMP %s: %w: %s", cmd, err, line)
			}
			if _, ok := m["event"]; ok {
				continue
			}
			if e, ok := m["error"]; ok {
				return fmt.Errorf("QMP %s: %s", cmd, e)
			}
			break
		}
	}
	return nil
}
