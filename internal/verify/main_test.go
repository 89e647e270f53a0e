package verify_test

import (
	"os"
	"testing"

	"github.com/leadmarket/leadmarket/internal/dbtest"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(childDatabaseEnv); url != "" {
		os.Exit(runChild(url))
	}
	os.Exit(dbtest.Run(m))
}
