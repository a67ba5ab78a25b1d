// Command gcp-secretmanager-fake runs the in-memory Secret Manager of package
// gcptest on its own, so that secretgate's gcp plugin can be tried without a
// GCP project:
//
//	go run ./plugins/gcp/gcptest/cmd/gcp-secretmanager-fake -listen 127.0.0.1:8085
//
// then point a gcp backend at it with the settings endpoint=127.0.0.1:8085
// and insecure=true. Everything lives in memory and is gone when it stops.
// -lag 2s makes `latest`, GetSecret and the lists answer from 2s ago, and
// -google-quotas enforces Google's default quotas (see package gcptest).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/secretgate/secretgate/plugins/gcp/gcptest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8085", "address to serve gRPC on (plaintext; keep it on loopback)")
	lag := flag.Duration("lag", 0, "consistency lag of `latest`, GetSecret, GetSecretVersion and the list calls")
	quotas := flag.Bool("google-quotas", false, "enforce Google's default quotas and the per-secret modification limit")
	flag.Parse()

	opts := gcptest.Options{Lag: *lag}
	if *quotas {
		opts.Quotas = gcptest.GoogleQuotas()
	}
	r, err := gcptest.NewServerWith(opts).Listen(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gcp-secretmanager-fake:", err)
		os.Exit(1)
	}
	fmt.Printf("gcp-secretmanager-fake: Secret Manager v1 (in memory, no auth) listening on %s\n", r.Addr)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	r.Stop()
}
