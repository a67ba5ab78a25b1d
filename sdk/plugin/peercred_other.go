//go:build !linux

package plugin

import (
	"errors"
	"net"
)

// directSupported: without SO_PEERCRED the plugin cannot tell who connects
// to a socket, so on other systems every call takes the gRPC connection.
const directSupported = false

var errNoPeerCred = errors.New("the direct channel needs Linux")

func checkPeer(*net.UnixConn, int) error { return errNoPeerCred }

func checkPrivateDir(string) error { return errNoPeerCred }
