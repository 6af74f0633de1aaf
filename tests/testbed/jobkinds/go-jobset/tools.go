//go:build tools

// Package tools pins the JobSet controller (its main package is the module root) for the integration test bed.
// It lives in its own module because each job-kind controller wants its own k8s.io and
// controller-runtime versions; one module would move them all to the newest.
package tools

import (
	_ "sigs.k8s.io/jobset"
)
