package verify_test

// childDatabaseEnv is set for a child process of TestKilledMidSweep_LosesNoLead (stub until written).
const childDatabaseEnv = "VERIFY_TEST_CHILD_DATABASE_URL"

func runChild(string) int { return 2 }
