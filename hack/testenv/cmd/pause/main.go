// Command pause is the sandbox ("pause") container of the test node's pods:
// it holds the pod's namespaces, reaps orphans and exits on SIGINT/SIGTERM,
// like the upstream pause image. hack/image.sh wraps this static binary in an
// OCI image so the node never needs a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
