// Command local-kms serves github.com/nsmithuk/local-kms on a loopback address.
//
// The upstream main binds every interface; Signet's test environment must only
// listen on loopback, so this wrapper configures the same packages and binds
// -addr / LOCAL_KMS_ADDR (default 127.0.0.1:0). Once listening it prints
// "listening on <addr>" so the harness can learn a port chosen by the kernel.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	kms "github.com/nsmithuk/local-kms/src"
	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	// Flags win over the environment; passing the data dir on the command
	// line also lets `pgrep -f <dir>` find a leaked process.
	dataDir := flag.String("data", env("KMS_DATA_PATH", "local-kms-data"), "data directory")
	addr := flag.String("addr", env("LOCAL_KMS_ADDR", "127.0.0.1:0"), "listen address (loopback)")
	flag.Parse()
	config.AWSAccountId = env("KMS_ACCOUNT_ID", "111122223333")
	config.AWSRegion = env("KMS_REGION", "us-east-1")
	dataPath, err := filepath.Abs(*dataDir)
	if err != nil {
		log.Fatalf("KMS_DATA_PATH: %v", err)
	}
	config.DatabasePath = dataPath
	database := data.NewDatabase(config.DatabasePath)
	defer database.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		kms.HandleRequest(w, r, database)
	})
	log.Fatal(http.Serve(ln, mux))
}
