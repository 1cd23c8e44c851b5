// Package e2e holds the end-to-end tests of pgAnalytics: the three real binaries (built once per
// test binary) running whole stacks (metrics store, API, primary with a streaming standby,
// registered collector) on throwaway PostgreSQL clusters, driven the way an operator would drive
// them. The tests are the package; this file only documents it.
//
//	go test ./e2e/           # everything, about a minute on two cores
//	go test -short ./e2e/    # without the 30-second API outage and the rolling deploy
package e2e
