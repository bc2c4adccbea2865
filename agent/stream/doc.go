// Package stream owns the guest side of stdio stream connections: it
// accepts connections on api.StreamPort, reads each one's api.StreamHeader
// and keeps the connection until the process it names claims it. A stream
// may connect before or after the RPC that creates its process.
package stream
