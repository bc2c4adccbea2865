package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmp is a minimal QEMU Machine Protocol client: enough to negotiate
// capabilities and run argument-less commands.
type qmp struct {
	conn net.Conn
	dec  *json.Decoder
}

type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *qmpError       `json:"error"`
	Event  string          `json:"event"`
}

// qmpError is an error QEMU answered.
type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string { return e.Class + ": " + e.Desc }

// dialQMP connects to the QMP socket, reads the greeting and leaves
// capabilities negotiation mode. ctx bounds the whole exchange.
func dialQMP(ctx context.Context, path string) (*qmp, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	q := &qmp{conn: conn, dec: json.NewDecoder(conn)}
	var greeting qmpMessage
	if err := q.dec.Decode(&greeting); err != nil {
		stop()
		_ = conn.Close()
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	if greeting.QMP == nil {
		stop()
		_ = conn.Close()
		return nil, fmt.Errorf("qmp greeting: not a QMP server")
	}
	if err := q.execute("qmp_capabilities"); err != nil {
		stop()
		_ = conn.Close()
		return nil, err
	}
	stop()
	return q, nil
}

// execute runs an argument-less cmd and waits for its answer.
func (q *qmp) execute(cmd string) error { return q.call(cmd, nil, nil) }

// call runs cmd with args (nil for none), decodes the answer into result
// (nil to ignore it) and skips events. A QEMU error is a *qmpError.
func (q *qmp) call(cmd string, args, result any) error {
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
	}{cmd, args}
	if err := json.NewEncoder(q.conn).Encode(req); err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for {
		var m qmpMessage
		if err := q.dec.Decode(&m); err != nil {
			return fmt.Errorf("qmp %s: %w", cmd, err)
		}
		switch {
		case m.Error != nil:
			return fmt.Errorf("qmp %s: %w", cmd, m.Error)
		case m.Return != nil:
			if result == nil {
				return nil
			}
			if err := json.Unmarshal(m.Return, result); err != nil {
				return fmt.Errorf("qmp %s: decode answer: %w", cmd, err)
			}
			return nil
		}
	}
}

func (q *qmp) Close() error { return q.conn.Close() }
