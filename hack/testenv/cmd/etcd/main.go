// Command etcd runs the etcd server from the pinned go.etcd.io/etcd/server/v3
// module, so the test environment does not depend on a distribution package.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
