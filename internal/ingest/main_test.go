package ingest_test

import (
	"os"
	"testing"

	"github.com/leadmarket/leadmarket/internal/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }
