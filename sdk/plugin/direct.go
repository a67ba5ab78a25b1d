package plugin

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"
)

// The direct channel (see the package doc for what it is for, and why only
// the gateway can use it). Its frames are a 4-byte big-endian length and a
// protobuf message: DirectHello then DirectCall from the host, DirectReply
// from the plugin. The host keeps a pool of connections (direct_client.go),
// each carrying one call at a time, made by the calling goroutine itself;
// the plugin answers each connection's calls on the goroutine that reads
// them (direct_server.go). Profiled on the 2-CPU machine of issue 16, a gRPC
// Read cost about 10 context switches over both processes (a futex wake
// for each hand-off between goroutines that found an idle thread), a
// direct one about 3.

// directTokenBytes is the size of the direct channel's token.
const directTokenBytes = 32

// maxDirectConns bounds the host's connections to one plugin: each is one
// call in flight. Calls beyond it take the gRPC connection, which
// multiplexes.
const maxDirectConns = 64

// maxFrameBytes bounds a frame: one message of up to maxMessageBytes plus
// the few fields around it.
const maxFrameBytes = maxMessageBytes + 1<<10

// directHandshakeTimeout bounds dialing and the hello on a new connection.
const directHandshakeTimeout = 5 * time.Second

// keptBufferBytes: a connection keeps its buffer between calls up to this
// size, so that one large list page does not pin megabytes per connection.
const keptBufferBytes = 64 << 10

var errFrameTooLarge = errors.New("frame over the size limit")

// writeFrame writes m as one frame, in one write, using buf as scratch; it
// returns the buffer for the next frame, cleared: it may hold a secret.
func writeFrame(w io.Writer, buf []byte, m proto.Message) ([]byte, error) {
	buf = append(buf[:0], 0, 0, 0, 0)
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, m)
	if err == nil {
		if n := len(buf) - 4; n > maxFrameBytes {
			err = fmt.Errorf("%w: %d bytes", errFrameTooLarge, n)
		} else {
			binary.BigEndian.PutUint32(buf, uint32(n))
			_, err = w.Write(buf)
		}
	}
	return reuse(buf), err
}

// readFrame reads one frame into m, using buf as scratch; it returns the
// buffer for the next frame, cleared. proto.Unmarshal copies what it keeps,
// so m holds nothing of buf.
func readFrame(r *bufio.Reader, buf []byte, m proto.Message) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrameBytes {
		return buf, fmt.Errorf("%w: %d bytes", errFrameTooLarge, n)
	}
	if uint32(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(r, buf)
	if err == nil {
		err = proto.Unmarshal(buf, m)
	}
	return reuse(buf), err
}

// reuse clears buf and keeps it for the next frame unless it is large.
func reuse(buf []byte) []byte {
	clear(buf)
	if cap(buf) > keptBufferBytes {
		return nil
	}
	return buf[:0]
}
